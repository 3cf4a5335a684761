// ioredis connections shaped for a proxy: commands fail fast while Redis is away (no offline queue,
// no resend after a reconnect, short timeouts) so nothing waits on the store; a separate subscriber
// connection carries change events and resubscribes by itself after a reconnect.
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { StoreConfig } from '../../../config/schema.ts';
import { parseDuration } from '../../../config/duration.ts';

export type RedisClient = Redis | Cluster;

function retryStrategy(times: number): number {
  return Math.min(100 * 2 ** Math.min(times, 5), 2000);
}

export function createRedisClient(cfg: StoreConfig, role: 'command' | 'subscriber'): RedisClient {
  const base: RedisOptions = {
    connectTimeout: parseDuration(cfg.connectTimeout),
    // Shutdown must not wait on a socket that is already gone (ioredis defaults to 2 s).
    disconnectTimeout: 200,
    retryStrategy,
    lazyConnect: false,
    ...(cfg.options as RedisOptions | undefined),
  };
  const perRole: RedisOptions =
    role === 'command'
      ? // A command in flight when the connection drops is failed, never re-sent after the
        // reconnect: Redis may already have run it, and a rate-limit check would count twice
        // (maxRetriesPerRequest: 1 keeps it for a resend; 0 flushes it on the first close).
        { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: parseDuration(cfg.commandTimeout) }
      : // The store subscribes itself on every 'ready': ioredis's own resubscription happens
        // after 'ready' is emitted, so "connected" would not yet mean "receiving events".
        { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false };
  const options = { ...base, ...perRole };
  if (cfg.cluster) {
    return new Cluster(cfg.cluster, {
      redisOptions: options,
      enableOfflineQueue: options.enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
    });
  }
  if (cfg.sentinels) {
    return new Redis({ ...options, sentinels: cfg.sentinels, name: cfg.sentinelName });
  }
  return new Redis(cfg.url ?? 'redis://127.0.0.1:6379', options);
}
