import type { StoreConfig } from '../../config/schema.ts';
import { MemoryStore } from './memory/memory-store.ts';
import type { StoreLogger } from './redis/redis-store.ts';
import type { Store } from './types.ts';

/** The configured store. ioredis is loaded only when Redis is used (it costs ~10 MB of resident memory). */
export async function createStore(cfg: StoreConfig, log: StoreLogger): Promise<Store> {
  if (cfg.kind !== 'redis') return new MemoryStore();
  const { RedisStore } = await import('./redis/redis-store.ts');
  return new RedisStore(cfg, log);
}
