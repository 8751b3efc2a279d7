export type { PodFacts, PodRecord } from './types.js';
export { createPodAttestor, type PodAttestor, type PodAttestorOptions } from './attest.js';
export { podRecord } from './pod-record.js';
export { parseDigestReference } from './image.js';
export { factsFromPodObject } from './offline.js';
