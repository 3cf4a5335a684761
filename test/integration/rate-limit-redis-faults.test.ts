// The rate-limit check under Redis faults, injected by a TCP proxy between ioredis and a real
// redis-server: a connection cut after the script ran must not make the client re-send it on
// reconnect (ioredis's default resends unfulfilled commands: the request would count twice), and a
// slow Redis holds a request no longer than store.commandTimeout before fail-open / fail-closed
// decides; once Redis answers again, the global counters decide again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../mesh-proxy/store/redis/connect.ts';
import { RedisRateLimits } from '../../mesh-proxy/store/redis/redis-rate-limits.ts';
import type { RateLimitWindow } from '../../mesh-proxy/store/types.ts';
import rateLimit from '../../plugins/builtin/rate-limit/index.ts';
import { pluginHarness } from '../../plugins/testing.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/ports.ts';

type Mode = 'pass' | 'cut-after-script' | 'slow';

/** A TCP proxy to Redis whose behaviour the test switches between requests. */
class FaultProxy {
  mode: Mode = 'pass';
  /** Scripts (EVAL/EVALSHA) seen on the way to Redis. */
  scripts = 0;
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  /** Replies held back in 'slow' mode, per client socket, released in order by release(). */
  readonly #held = new Map<Socket, Buffer[]>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(target: number): Promise<FaultProxy> {
    let self: FaultProxy | undefined;
    const server = createServer((client) => self!.#accept(client, target));
    self = new FaultProxy(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return self;
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  #accept(client: Socket, target: number): void {
    const upstream = connect(target, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const drop = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      const isScript = /\$(4|7)\r\neval(sha)?\r\n/i.test(chunk.toString('latin1'));
      if (isScript) this.scripts++;
      upstream.write(chunk);
      if (isScript && this.mode === 'cut-after-script') {
        // Let Redis run it, then cut the client off before the reply: the outcome of the script is
        // unknown to the client, exactly as in a network blip.
        upstream.once('data', () => client.destroy());
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.mode === 'slow') {
        const held = this.#held.get(client) ?? [];
        held.push(chunk);
        this.#held.set(client, held);
      } else if (this.mode !== 'cut-after-script') client.write(chunk);
    });
  }

  /** Back to 'pass'; held replies go out in order (a slow Redis answers late, never out of order). */
  release(): void {
    this.mode = 'pass';
    for (const [client, chunks] of this.#held) for (const c of chunks) if (!client.destroyed) client.write(c);
    this.#held.clear();
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise((r) => this.#server.close(r));
  }
}

const storeConfig = (url: string, commandTimeout: string) => ({ kind: 'redis' as const, url, keyPrefix: 'test:', connectTimeout: '2s', commandTimeout });

function ready(c: Redis): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => c.once('ready', () => resolve()));
}

describe('rate-limit checks under Redis faults (TCP fault proxy)', () => {
  let redis: RedisServer;
  let proxy: FaultProxy;
  /** Straight to Redis, to read the counters. */
  let direct: Redis;
  let directLimits: RedisRateLimits;
  const clients: Redis[] = [];

  before(async () => {
    redis = await RedisServer.start();
    proxy = await FaultProxy.start(redis.port);
    direct = createRedisClient(storeConfig(redis.url, '2s'), 'command') as Redis;
    direct.on('error', () => {});
    await ready(direct);
    directLimits = new RedisRateLimits(direct, 'test:');
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    direct?.disconnect();
    await proxy?.close();
    await redis?.stop();
  });

  async function viaProxy(commandTimeout: string): Promise<{ client: Redis; limits: RedisRateLimits }> {
    const client = createRedisClient(storeConfig(`redis://127.0.0.1:${proxy.port}`, commandTimeout), 'command') as Redis;
    client.on('error', () => {});
    clients.push(client);
    await ready(client);
    return { client, limits: new RedisRateLimits(client, 'test:') };
  }

  test('1. a check cut off after Redis ran it is not re-sent on reconnect: it counts once', async () => {
    const { client, limits } = await viaProxy('1s');
    const w: RateLimitWindow[] = [{ max: 10, periodMs: 3_600_000 }];
    assert.equal((await limits.consume('blip', w, 1)).remaining, 9);
    // 1. the script reaches Redis, the connection drops before the reply: the check fails
    proxy.mode = 'cut-after-script';
    const scriptsBefore = proxy.scripts;
    await assert.rejects(limits.consume('blip', w, 1));
    proxy.mode = 'pass';
    // 2. the client reconnects; give a re-send (ioredis's default) every chance to land
    await waitFor('the client to reconnect', () => (client.status === 'ready' ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(proxy.scripts - scriptsBefore, 1, 'the script went to Redis once, not again after the reconnect');
    // 3. Redis counted the first check and the cut-off one: 10 − 2 − this one = 7
    assert.equal((await directLimits.consume('blip', w, 1)).remaining, 7);
  });

  test('2. a slow Redis holds a request no longer than store.commandTimeout; fail-open and fail-closed decide, then Redis decides again', async (t) => {
    const timeoutMs = 250;
    const { limits } = await viaProxy(`${timeoutMs}ms`);
    const limitsCfg = [{ max: 3, per: '1h' }];
    const open = await pluginHarness(rateLimit, { key: 'header:x-user', limits: limitsCfg, whenStoreDown: 'fail-open' }, { rateLimits: limits });
    const closed = await pluginHarness(rateLimit, { key: 'header:x-user', limits: limitsCfg, whenStoreDown: 'fail-closed' }, { rateLimits: limits });
    try {
      // 1. one check through a healthy Redis: the global bucket holds 2 more
      assert.equal((await open.run({ headers: { 'x-user': 'slow' } })).forwarded, true);
      proxy.mode = 'slow';
      // 2. fail-closed: 503 once the command timed out, not before and not much later
      let start = performance.now();
      const c = await closed.run({ headers: { 'x-user': 'slow' } });
      const closedMs = performance.now() - start;
      assert.equal(c.reply?.status, 503);
      assert.equal(c.reply?.code, 'RATE_LIMIT_UNAVAILABLE');
      // 3. fail-open: the local backstop (same limits, a fresh per-process bucket) lets 3 through, then 429
      start = performance.now();
      const seen: number[] = [];
      for (let i = 0; i < 4; i++) seen.push((await open.run({ headers: { 'x-user': 'slow' } })).reply?.status ?? 200);
      const openMs = (performance.now() - start) / 4;
      assert.deepEqual(seen, [200, 200, 200, 429]);
      t.diagnostic(`slow Redis, commandTimeout ${timeoutMs} ms: fail-closed answered in ${closedMs.toFixed(0)} ms, fail-open in ${openMs.toFixed(0)} ms per request`);
      for (const ms of [closedMs, openMs]) assert.ok(ms >= timeoutMs - 20 && ms < timeoutMs + 750, `${ms.toFixed(0)} ms vs commandTimeout ${timeoutMs} ms`);
      // 4. Redis answers again (late replies drain in order) and decides again. The slow checks did
      //    run in Redis (only their replies were late), so the global bucket is spent: 429.
      proxy.release();
      await waitFor('Redis to decide again', async () => ((await closed.run({ headers: { 'x-user': 'other' } })).forwarded ? true : undefined), 10_000, 100);
      const r = await closed.run({ headers: { 'x-user': 'slow' } });
      assert.equal(r.reply?.status, 429);
      assert.equal(r.reply?.code, 'RATE_LIMITED');
    } finally {
      proxy.release();
      await open.close();
      await closed.close();
    }
  });
});
