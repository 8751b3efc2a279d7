export type { PodFacts, PodRecord } from './types.js';
export { MAX_STALENESS_MS } from './types.js';
export { createPodAttestor, type PodAttestor, type PodAttestorOptions } from './attest.js';
export { podRecord } from './pod-record.js';
export { parseDigestReference, formatImage, normaliseRepository } from './image.js';
export { factsFromPodObject } from './offline.js';
