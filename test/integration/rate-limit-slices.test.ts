// rate-limit slices against a real redis-server: a busy caller is served from units taken ahead
// (far fewer store checks than requests), two gateways together never pass more than the limit,
// refusals are remembered for one lease only (a key reset in Redis takes effect after it), and a
// check for several units is granted what every window has room for, as the memory store does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createRedisClient } from '../../mesh-proxy/store/redis/connect.ts';
import { RedisRateLimits } from '../../mesh-proxy/store/redis/redis-rate-limits.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import type { RateLimitWindow } from '../../mesh-proxy/store/types.ts';
import rateLimit from '../../plugins/builtin/rate-limit/index.ts';
import { pluginHarness } from '../../plugins/testing.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/ports.ts';

const storeConfig = (url: string) => ({ kind: 'redis' as const, url, keyPrefix: 'slices:', connectTimeout: '2s', commandTimeout: '1s' });

async function connect(url: string): Promise<Redis> {
  const client = createRedisClient(storeConfig(url), 'command') as Redis;
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
  return client;
}

async function checks(registry: Registry): Promise<number> {
  const m = await registry.getSingleMetric('meshgate_plugin_rate_limit_store_checks_total')?.get();
  return m?.values.reduce((n, v) => n + v.value, 0) ?? 0;
}

describe('rate-limit slices through a real redis-server', () => {
  let redis: RedisServer;
  const clients: Redis[] = [];
  let storeA: RedisRateLimits;
  let storeB: RedisRateLimits;

  before(async () => {
    redis = await RedisServer.start();
    // Two connections, as two gateways have.
    clients.push(await connect(redis.url), await connect(redis.url));
    storeA = new RedisRateLimits(clients[0], 'slices:');
    storeB = new RedisRateLimits(clients[1], 'slices:');
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  test('a busy caller is served from slices: every request passes, with a small fraction of the store checks; lease 0ms checks each one', async (t) => {
    const cfg = { key: 'header:x-user', limits: [{ max: 1_000_000, per: '1s' }] };
    const registry = new Registry();
    const h = await pluginHarness(rateLimit, cfg, { rateLimits: storeA, registry });
    const exactRegistry = new Registry();
    const exact = await pluginHarness(rateLimit, { ...cfg, key: 'header:x-other', lease: '0ms' }, { rateLimits: storeA, registry: exactRegistry });
    try {
      let passed = 0;
      let lastRemaining = Infinity;
      // 40 waves of 50 concurrent requests (a loaded gateway's turn), then the same one by one.
      for (let wave = 0; wave < 40; wave++) {
        const runs = await Promise.all(Array.from({ length: 50 }, () => h.run({ headers: { 'x-user': 'busy' } })));
        for (const r of runs) if (r.forwarded) passed++;
        const headers = runs[runs.length - 1].respond(200);
        assert.equal(headers['ratelimit-limit'], '1000000');
        lastRemaining = Number(headers['ratelimit-remaining']);
      }
      for (let i = 0; i < 200; i++) if ((await h.run({ headers: { 'x-user': 'busy' } })).forwarded) passed++;
      assert.equal(passed, 2200);
      assert.ok(lastRemaining > 990_000 && lastRemaining < 1_000_000, `remaining ${lastRemaining}`);
      const n = await checks(registry);
      t.diagnostic(`2,200 requests, ${n} store checks`);
      assert.ok(n < 2200 / 5, `${n} store checks for 2,200 requests`);

      for (let i = 0; i < 100; i++) assert.equal((await exact.run({ headers: { 'x-other': 'one' } })).forwarded, true);
      assert.equal(await checks(exactRegistry), 100, 'lease 0ms: one store check per request');
    } finally {
      await h.close();
      await exact.close();
    }
  });

  test('two gateways taking slices of one limit together pass no more than it allows', async (t) => {
    // 600 per minute with a 5 s lease: slices of up to 50 units; 10 units replenish per second.
    const cfg = { key: 'header:x-user', limits: [{ max: 600, per: '1m' }], lease: '5s' };
    const a = await pluginHarness(rateLimit, cfg, { rateLimits: storeA });
    const b = await pluginHarness(rateLimit, cfg, { rateLimits: storeB });
    try {
      const started = performance.now();
      let passed = 0;
      let refused = 0;
      // Waves of 10: some requests wait for a check, most spend units a slice already holds.
      for (let wave = 0; wave < 150; wave++) {
        const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).run({ headers: { 'x-user': 'shared' } })));
        for (const r of runs) {
          if (r.forwarded) passed++;
          else {
            assert.equal(r.reply?.status, 429);
            assert.ok(Number(r.reply?.headers?.['retry-after']) >= 1);
            refused++;
          }
        }
      }
      const seconds = (performance.now() - started) / 1000;
      const replenished = Math.ceil(seconds * 10) + 1;
      t.diagnostic(`${passed} passed, ${refused} refused in ${seconds.toFixed(2)} s`);
      assert.equal(passed + refused, 1500);
      assert.ok(passed <= 600 + replenished, `${passed} passed: more than 600 + ${replenished} replenished`);
      // Units one gateway still holds when the other is refused are the only shortfall: ≤ one slice each.
      assert.ok(passed >= 600 - 2 * 50, `${passed} passed`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a refusal is remembered for one lease, no longer: a key reset in Redis takes effect after it', async (t) => {
    // 2 per hour: never sliced (below 2 units per lease); the lease only bounds the refusal memory.
    const cfg = { key: 'header:x-user', limits: [{ max: 2, per: '1h' }], lease: '1s' };
    const registry = new Registry();
    const h = await pluginHarness(rateLimit, cfg, { rateLimits: storeA, registry });
    try {
      assert.equal((await h.run({ headers: { 'x-user': 'flood' } })).forwarded, true);
      assert.equal((await h.run({ headers: { 'x-user': 'flood' } })).forwarded, true);
      const first = await h.run({ headers: { 'x-user': 'flood' } });
      assert.equal(first.reply?.status, 429);
      const retryAfter = Number(first.reply?.headers?.['retry-after']);
      assert.equal(await checks(registry), 3);
      const flood = await Promise.all(Array.from({ length: 50 }, () => h.run({ headers: { 'x-user': 'flood' } })));
      for (const r of flood) {
        assert.equal(r.reply?.status, 429);
        assert.equal(r.reply?.code, 'RATE_LIMITED');
        assert.equal(r.reply?.headers?.['ratelimit-remaining'], '0');
        // Counted from the store's answer, not from the lease.
        const retry = Number(r.reply?.headers?.['retry-after']);
        assert.ok(retry >= retryAfter - 1 && retry <= retryAfter, `retry-after ${retry} vs ${retryAfter}`);
      }
      const after = await checks(registry);
      assert.ok(after <= 4, `${after} store checks: the flood was answered from the remembered refusal`);

      // An operator resets the caller's key: within a lease (1 s) the caller passes again.
      const keys = await clients[0].keys('slices:rl:*:flood');
      assert.equal(keys.length, 1, JSON.stringify(keys));
      await clients[0].del(keys[0]);
      const reset = performance.now();
      await waitFor('the reset caller to pass', async () => ((await h.run({ headers: { 'x-user': 'flood' } })).forwarded ? true : undefined), 10_000, 50);
      t.diagnostic(`passed again ${Math.round(performance.now() - reset)} ms after the reset`);
    } finally {
      await h.close();
    }
  });

  test('consumeUpTo grants what every window has room for, after units given back; consume stays all or nothing; Redis and memory agree', async () => {
    const windows = [{ max: 10, periodMs: 60_000 }, { max: 7, periodMs: 3_600_000 }];
    const memory = new MemoryRateLimits();
    // [want, returned]: the hourly window holds 7; 2 given back make room for 2 more.
    const steps: Array<[number, number]> = [[3, 0], [3, 0], [3, 0], [1, 0], [5, 2], [1, 0]];
    const granted: number[] = [];
    for (const [want, returned] of steps) {
      const r = await storeA.consumeUpTo('upto', windows, want, returned);
      const m = await memory.consumeUpTo('upto', windows, want, returned);
      // Times differ by the ms between the two checks (Redis's clock vs this process's).
      assert.deepEqual({ ...r, resetMs: 0, retryAfterMs: 0 }, { ...m, resetMs: 0, retryAfterMs: 0 });
      assert.ok(Math.abs(r.resetMs - m.resetMs) <= 50, `resetMs ${r.resetMs} vs ${m.resetMs}`);
      assert.ok(Math.abs(r.retryAfterMs - m.retryAfterMs) <= 50, `retryAfterMs ${r.retryAfterMs} vs ${m.retryAfterMs}`);
      granted.push(r.granted);
    }
    assert.deepEqual(granted, [3, 3, 1, 0, 2, 0]);

    // consume is all or nothing: 5 units where 3 fit are refused, and nothing is consumed.
    const w = [{ max: 3, periodMs: 3_600_000 }];
    for (const store of [storeA, memory]) {
      const refused = await store.consume('all-or-nothing', w, 5);
      assert.equal(refused.allowed, false);
      assert.equal(refused.granted, 0);
      assert.ok(refused.retryAfterMs > 0);
      const after = await store.consume('all-or-nothing', w, 3);
      assert.equal(after.allowed, true, 'the refused check consumed nothing');
      assert.equal(after.granted, 3);
    }
  });

  test('units left when a lease ends go back with the caller\'s next check', async () => {
    // A spy around the real store: which units each slice check asked for and gave back.
    const calls: Array<{ want: number; returned: number }> = [];
    const spy = {
      remote: true,
      consume: storeA.consume.bind(storeA),
      consumeUpTo: (key: string, w: RateLimitWindow[], want: number, returned: number) => {
        calls.push({ want, returned });
        return storeA.consumeUpTo(key, w, want, returned);
      },
    };
    // 100/s with a 1 s lease: slices of up to 100 units (a lease long enough for a slow machine).
    const h = await pluginHarness(rateLimit, { key: 'header:x-user', limits: [{ max: 100, per: '1s' }], lease: '1s' }, { rateLimits: spy });
    try {
      const one = () => h.run({ headers: { 'x-user': 'refund' } });
      // 20 at once: a check for 1, then one for the 19 that waited.
      for (const r of await Promise.all(Array.from({ length: 20 }, one))) assert.equal(r.forwarded, true);
      // The slice ran dry within its lease: the next check asks for twice as much and spends 1.
      assert.equal((await one()).forwarded, true);
      assert.deepEqual(calls, [{ want: 1, returned: 0 }, { want: 19, returned: 0 }, { want: 4, returned: 0 }]);
      // Past the lease, the 3 unspent units go back with the next check.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal((await one()).forwarded, true);
      assert.deepEqual(calls[3], { want: 1, returned: 3 });
    } finally {
      await h.close();
    }
  });
});
