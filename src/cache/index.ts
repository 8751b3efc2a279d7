export type { SharedCache } from './types.js';
export { createMemoryCache } from './memory.js';
