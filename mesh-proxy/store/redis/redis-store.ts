import { once } from 'node:events';
import type { StoreConfig } from '../../../config/schema.ts';
import type { Store, StoreStatus } from '../types.ts';
import { createRedisClient, type RedisClient } from './connect.ts';
import { RedisBreakerBoard } from './redis-breaker-board.ts';
import { RedisRegistry } from './redis-registry.ts';

export interface StoreLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** The production store: one Redis (single node, Sentinel or Cluster) per datacenter. */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly registry: RedisRegistry;
  readonly breakers: RedisBreakerBoard;
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #listeners = new Set<(s: StoreStatus) => void>();
  readonly #log: StoreLogger;
  #status: StoreStatus = 'down';
  #closing = false;

  constructor(cfg: StoreConfig, log: StoreLogger) {
    this.#log = log;
    this.#client = createRedisClient(cfg, 'command');
    this.#subscriber = createRedisClient(cfg, 'subscriber');
    const onError = (err: Error) => this.#log.warn({ err: err.message }, 'store error');
    // An 'error' listener is required: ioredis would otherwise report every failed reconnect.
    this.#client.on('error', () => {});
    this.#subscriber.on('error', () => {});
    this.#client.on('ready', () => this.#set('up'));
    this.#client.on('close', () => this.#set('down'));
    this.registry = new RedisRegistry(this.#client, this.#subscriber, cfg.keyPrefix, onError);
    this.breakers = new RedisBreakerBoard(this.#client, this.#subscriber, cfg.keyPrefix, onError);
  }

  get status(): StoreStatus {
    return this.#status;
  }

  onStatus(listener: (status: StoreStatus) => void): void {
    this.#listeners.add(listener);
  }

  async ready(timeoutMs: number): Promise<boolean> {
    if (this.#status === 'up') return true;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      await once(this.#client, 'ready', { signal: ac.signal });
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([quit(this.#client), quit(this.#subscriber)]);
  }

  #set(status: StoreStatus): void {
    if (status === this.#status || this.#closing) return;
    this.#status = status;
    if (status === 'down') this.#log.warn({ store: 'redis' }, 'store unreachable; serving from last known state');
    else this.#log.info({ store: 'redis' }, 'store connected');
    for (const l of this.#listeners) l(status);
  }
}

async function quit(c: RedisClient): Promise<void> {
  if (c.status === 'ready') {
    await Promise.race([c.quit(), new Promise((r) => setTimeout(r, 500))]).catch(() => {});
  }
  c.disconnect();
}
