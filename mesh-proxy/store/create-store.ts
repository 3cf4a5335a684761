import type { StoreConfig } from '../../config/schema.ts';
import { MemoryStore } from './memory/memory-store.ts';
import { RedisStore, type StoreLogger } from './redis/redis-store.ts';
import type { Store } from './types.ts';

export function createStore(cfg: StoreConfig, log: StoreLogger): Store {
  return cfg.kind === 'redis' ? new RedisStore(cfg, log) : new MemoryStore();
}
