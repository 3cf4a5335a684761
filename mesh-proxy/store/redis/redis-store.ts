import type { StoreConfig } from '../../../config/schema.ts';
import type { Store, StoreStatus } from '../types.ts';
import { createRedisClient, type RedisClient } from './connect.ts';
import { RedisSplits } from './redis-splits.ts';
import { RedisBreakerBoard } from './redis-breaker-board.ts';
import { RedisRateLimits } from './redis-rate-limits.ts';
import { RedisRegistry } from './redis-registry.ts';

export interface StoreLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * The production store: one Redis (single node, Sentinel or Cluster) per datacenter. It is "up"
 * only while commands can be sent AND change events are being received, so that the resync a
 * proxy runs when the store comes back can never miss an event published in between.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly registry: RedisRegistry;
  readonly breakers: RedisBreakerBoard;
  readonly splits: RedisSplits;
  readonly rateLimits: RedisRateLimits;
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #channels: string[];
  readonly #listeners = new Set<(s: StoreStatus) => void>();
  readonly #log: StoreLogger;
  #status: StoreStatus = 'down';
  #commandsReady = false;
  #subscribed = false;
  #closing = false;

  constructor(cfg: StoreConfig, log: StoreLogger) {
    this.#log = log;
    this.#client = createRedisClient(cfg, 'command');
    this.#subscriber = createRedisClient(cfg, 'subscriber');
    // An 'error' listener is required: ioredis would otherwise report every failed reconnect.
    this.#client.on('error', () => {});
    this.#subscriber.on('error', () => {});
    this.registry = new RedisRegistry(this.#client, this.#subscriber, cfg.keyPrefix);
    this.breakers = new RedisBreakerBoard(this.#client, this.#subscriber, cfg.keyPrefix);
    this.rateLimits = new RedisRateLimits(this.#client, cfg.keyPrefix);
    this.splits = new RedisSplits(this.#client, this.#subscriber, cfg.keyPrefix);
    this.#channels = [this.registry.channel, this.breakers.channel, this.splits.channel];
    this.#client.on('ready', () => {
      this.#commandsReady = true;
      this.#update();
    });
    this.#client.on('close', () => {
      this.#commandsReady = false;
      this.#update();
    });
    this.#subscriber.on('ready', () => void this.#subscribe());
    this.#subscriber.on('close', () => {
      this.#subscribed = false;
      this.#update();
    });
  }

  get status(): StoreStatus {
    return this.#status;
  }

  onStatus(listener: (status: StoreStatus) => void): void {
    this.#listeners.add(listener);
  }

  /** Resolves true once the store is up, or false after timeoutMs (connection errors meanwhile don't end the wait). */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.#status === 'up') return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const onStatus = (s: StoreStatus) => {
        if (s === 'up') done(true);
      };
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#listeners.delete(onStatus);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#listeners.add(onStatus);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#status = 'down'; // listeners are not told: the proxy is stopping
    await Promise.allSettled([quit(this.#client), quit(this.#subscriber)]);
  }

  async #subscribe(): Promise<void> {
    try {
      await this.#subscriber.subscribe(...this.#channels);
      this.#subscribed = true;
      this.#update();
    } catch (err) {
      // The connection is up but refused (ACL, redirect): try again rather than wait for a reconnect.
      this.#log.warn({ err: (err as Error).message }, 'could not subscribe to store events; retrying');
      setTimeout(() => {
        if (!this.#closing && this.#subscriber.status === 'ready') void this.#subscribe();
      }, 1000).unref();
    }
  }

  #update(): void {
    const status: StoreStatus = this.#commandsReady && this.#subscribed ? 'up' : 'down';
    if (status === this.#status || this.#closing) return;
    this.#status = status;
    if (status === 'down') this.#log.warn({ store: 'redis' }, 'store unreachable; serving from last known state');
    else this.#log.info({ store: 'redis' }, 'store connected');
    for (const l of [...this.#listeners]) l(status);
  }
}

async function quit(c: RedisClient): Promise<void> {
  if (c.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.quit(), new Promise((r) => (timer = setTimeout(r, 500)))]).catch(() => {});
    clearTimeout(timer);
  }
  c.disconnect();
}
