// The Redis GCRA script against a real redis-server: it agrees with the memory store on the same
// bursts, refuses across windows without consuming, expires idle keys, and the plugin's per-check
// latency through it is measured.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../mesh-proxy/store/redis/connect.ts';
import { RedisRateLimits } from '../../mesh-proxy/store/redis/redis-rate-limits.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import type { RateLimitDecision, RateLimitWindow } from '../../mesh-proxy/store/types.ts';
import rateLimit from '../../plugins/builtin/rate-limit/index.ts';
import { pluginHarness } from '../../plugins/testing.ts';
import { RedisServer } from '../helpers/redis-server.ts';

const storeConfig = (url: string) => ({ kind: 'redis' as const, url, keyPrefix: 'test:', connectTimeout: '2s', commandTimeout: '1s' });

describe('RedisRateLimits (Lua GCRA) against a real redis-server', () => {
  let redis: RedisServer;
  let client: Redis;
  let store: RedisRateLimits;

  before(async () => {
    redis = await RedisServer.start();
    client = createRedisClient(storeConfig(redis.url), 'command') as Redis;
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    store = new RedisRateLimits(client, 'test:');
  });

  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  const summarize = (ds: RateLimitDecision[]) => ({ allowed: ds.filter((d) => d.allowed).length, limited: ds.filter((d) => !d.allowed).length });

  test('a burst: memory and Redis agree on allow/deny counts, limit, remaining and window', async () => {
    const cases: { windows: RateLimitWindow[]; burst: number }[] = [
      { windows: [{ max: 10, periodMs: 60_000 }], burst: 25 },
      { windows: [{ max: 3, periodMs: 3_600_000 }], burst: 7 },
      { windows: [{ max: 50, periodMs: 60_000 }, { max: 7, periodMs: 3_600_000 }], burst: 20 },
      { windows: [{ max: 7, periodMs: 60_000 }, { max: 100, periodMs: 3_600_000 }], burst: 20 },
      { windows: [{ max: 1000, periodMs: 86_400_000 }], burst: 1200 },
    ];
    for (const [i, c] of cases.entries()) {
      const mem = new MemoryRateLimits();
      const m: RateLimitDecision[] = [];
      const r: RateLimitDecision[] = [];
      // Periods of a minute or more: the burst's own duration (ms) cannot replenish a unit.
      for (let n = 0; n < c.burst; n++) {
        m.push(await mem.consume('k', c.windows, 1));
        r.push(await store.consume(`burst-${i}`, c.windows, 1));
      }
      assert.deepEqual(summarize(r), summarize(m), `case ${i}`);
      const max = Math.min(...c.windows.map((w) => w.max));
      assert.equal(summarize(r).allowed, max, `case ${i}: exactly the tightest max passes`);
      assert.deepEqual(
        r.map((d) => [d.allowed, d.window, d.limit, d.remaining]),
        m.map((d) => [d.allowed, d.window, d.limit, d.remaining]),
        `case ${i}: decisions identical`,
      );
      for (const d of r) {
        assert.ok(d.remaining >= 0);
        if (!d.allowed) assert.ok(d.retryAfterMs > 0 && d.retryAfterMs <= Math.max(...c.windows.map((w) => w.periodMs)));
        else assert.equal(d.retryAfterMs, 0);
      }
    }
  });

  test('checks made in one turn go as batched script calls and answer exactly as one by one', async () => {
    // 300 checks issued together (more than one batch of 128), interleaving three keys with different
    // limits, one of them with two windows: each key's decisions equal the memory store's sequence.
    const keys = [
      { key: 'batch-a', windows: [{ max: 40, periodMs: 60_000 }] },
      { key: 'batch-b', windows: [{ max: 150, periodMs: 60_000 }] },
      { key: 'batch-c', windows: [{ max: 500, periodMs: 60_000 }, { max: 25, periodMs: 3_600_000 }] },
    ];
    const sent: Array<{ key: string; p: Promise<RateLimitDecision> }> = [];
    // Script calls as Redis counts them (EVALSHA, and EVAL when the script was not cached yet).
    const scriptCalls = async () => {
      const stats = await client.info('commandstats');
      return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const before = await scriptCalls();
    {
      for (let n = 0; n < 300; n++) {
        const k = keys[n % 3];
        sent.push({ key: k.key, p: store.consume(k.key, k.windows, 1) });
      }
      const got = await Promise.all(sent.map((s) => s.p));
      for (const k of keys) {
        const mem = new MemoryRateLimits();
        const want: RateLimitDecision[] = [];
        for (let n = 0; n < 100; n++) want.push(await mem.consume('k', k.windows, 1));
        const mine = got.filter((_, i) => sent[i].key === k.key);
        assert.deepEqual(mine.map((d) => [d.allowed, d.window, d.limit, d.remaining]), want.map((d) => [d.allowed, d.window, d.limit, d.remaining]), k.key);
      }
    }
    // 300 checks in batches of at most 128: 3 calls (a failed EVALSHA and its EVAL retry add one).
    const calls = (await scriptCalls()) - before;
    assert.ok(calls >= 3 && calls <= 4, `300 checks took ${calls} script calls`);
  });

  test('a refusal by one window consumes nothing in the others', async () => {
    const tight: RateLimitWindow[] = [{ max: 100, periodMs: 60_000 }, { max: 2, periodMs: 60_000 }];
    for (let n = 0; n < 10; n++) await store.consume('multi', tight, 1);
    // Had the 8 refusals consumed the 100-window, it would show 90 left instead of 98.
    const loose: RateLimitWindow[] = [{ max: 100, periodMs: 60_000 }];
    const d = await store.consume('multi', loose, 1);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining, 97);
  });

  test('a short window replenishes; the key expires once every window is full again', async () => {
    const w: RateLimitWindow[] = [{ max: 2, periodMs: 300 }];
    assert.equal((await store.consume('short', w, 1)).allowed, true);
    assert.equal((await store.consume('short', w, 1)).allowed, true);
    const refused = await store.consume('short', w, 1);
    assert.equal(refused.allowed, false);
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 150, `retryAfterMs ${refused.retryAfterMs}`);
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 20));
    assert.equal((await store.consume('short', w, 1)).allowed, true);
    const ttl = await client.pttl('test:rl:short');
    assert.ok(ttl > 0 && ttl <= 300 + 1000, `pttl ${ttl}`);
  });

  test('bursts of max with non-dyadic period/max pass exactly max (no float drift)', async () => {
    for (const [i, [max, periodMs]] of [[7, 3_600_000], [9, 60_000], [14, 1_000_000], [33, 3_600_000], [333, 3_600_000], [99, 86_400_000]].entries()) {
      const w: RateLimitWindow[] = [{ max, periodMs }];
      let passed = 0;
      for (let n = 0; n < max + 3; n++) if ((await store.consume(`drift-${i}`, w, 1)).allowed) passed++;
      assert.equal(passed, max, `${max} per ${periodMs} ms`);
    }
  });

  test('a changed config (window count) on an existing key keeps working', async () => {
    await store.consume('reshape', [{ max: 5, periodMs: 60_000 }, { max: 50, periodMs: 3_600_000 }], 1);
    const d = await store.consume('reshape', [{ max: 5, periodMs: 60_000 }], 1);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining, 3);
    const ttl = await client.pttl('test:rl:reshape');
    assert.ok(ttl > 0 && ttl <= 3_600_000 + 1000, `pttl ${ttl}`);
  });

  test('fractional emission intervals (max not dividing the period) stay exact over many requests', async () => {
    // 7 per minute: T = 8571.43… ms; TATs are stored with full precision (not Lua's 14-digit
    // tostring), so Redis and gcra.ts do the same arithmetic.
    const w: RateLimitWindow[] = [{ max: 7, periodMs: 60_000 }];
    let allowed = 0;
    for (let n = 0; n < 30; n++) if ((await store.consume('frac', w, 1)).allowed) allowed++;
    assert.equal(allowed, 7);
    const [ms, frac] = await client.hmget('test:rl:frac', '1', '2');
    assert.match(ms ?? '', /^\d+$/, 'whole ms');
    const f = Number(frac);
    assert.ok(f >= 0 && f < 1, `fraction ${frac}`);
    // 7 × 60000/7 = 60000 exactly: nothing left over beyond float noise.
    assert.ok(f < 1e-6 || f > 1 - 1e-6, `fraction ${frac}`);
  });

  test('the plugin through Redis vs memory: per-check latency (measured, reported)', async (t) => {
    const cfg = { key: 'header:x-user', limits: [{ max: 1_000_000, per: '1h' }] };
    const viaRedis = await pluginHarness(rateLimit, cfg, { rateLimits: store });
    const viaMemory = await pluginHarness(rateLimit, cfg);
    const N = 500;
    const time = async (h: typeof viaRedis) => {
      for (let i = 0; i < 50; i++) await h.run({ headers: { 'x-user': `u${i % 10}` } });
      const start = performance.now();
      for (let i = 0; i < N; i++) {
        const run = await h.run({ headers: { 'x-user': `u${i % 10}` } });
        assert.equal(run.forwarded, true);
      }
      return (performance.now() - start) / N;
    };
    try {
      const redisMs = await time(viaRedis);
      const memMs = await time(viaMemory);
      t.diagnostic(`per request through the harness: redis ${redisMs.toFixed(3)} ms, memory ${memMs.toFixed(3)} ms`);
      assert.ok(redisMs < 50, 'a local Redis check is well under 50 ms');
    } finally {
      await viaRedis.close();
      await viaMemory.close();
    }
  });
});
