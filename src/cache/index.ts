export type { SharedCache } from './types.js';
export { createSharedCache } from './create.js';
export { createMemoryCache } from './memory.js';
export { createRedisCache } from './redis.js';
export type { RedisCacheOptions, RedisTarget } from './redis.js';
export { createEntrySealer } from './seal.js';
export type { EntrySealer, RejectReason } from './seal.js';
