// rate-limit through the plugin harness: windows, headers, keys, trusted proxies, dry-run, and what
// happens when the store cannot answer (fail-open with the local backstop, or fail-closed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { RequestContext } from '../../plugins/api.ts';
import { pluginChainMetrics } from '../../plugins/chain-metrics.ts';
import rateLimit from '../../plugins/builtin/rate-limit/index.ts';
import { TrustedProxies } from '../../plugins/builtin/shared/client-address.ts';
import { pluginHarness, runPlugin } from '../../plugins/testing.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import type { RateLimitStore } from '../../mesh-proxy/store/types.ts';

const fail = () => Promise.reject(new Error('Connection is closed.'));
const down: RateLimitStore = { remote: true, consume: fail, consumeUpTo: fail };

test('1. N requests pass per window, the next gets 429 RATE_LIMITED with Retry-After and RateLimit-* headers', async () => {
  const h = await pluginHarness(rateLimit, { key: 'ip', limits: [{ max: 3, per: '1m' }] });
  for (let i = 0; i < 3; i++) {
    const r = await h.run({ clientIp: '10.0.0.1' });
    assert.equal(r.forwarded, true);
    const headers = r.respond(200);
    assert.equal(headers['ratelimit-limit'], '3');
    assert.equal(headers['ratelimit-remaining'], String(2 - i));
  }
  const refused = await h.run({ clientIp: '10.0.0.1' });
  assert.equal(refused.forwarded, false);
  assert.equal(refused.reply?.status, 429);
  assert.equal(refused.reply?.code, 'RATE_LIMITED');
  assert.equal(refused.reply?.headers?.['ratelimit-remaining'], '0');
  assert.ok(Number(refused.reply?.headers?.['retry-after']) >= 1);
  // another client has its own bucket
  assert.equal((await h.run({ clientIp: '10.0.0.2' })).forwarded, true);
  await h.close();
});

test('2. several windows: the tighter one refuses, and a refused request consumes nothing', async () => {
  const h = await pluginHarness(rateLimit, { key: 'route', limits: [{ max: 2, per: '200ms' }, { max: 3, per: '1h' }] });
  assert.equal((await h.run()).forwarded, true);
  assert.equal((await h.run()).forwarded, true);
  assert.equal((await h.run()).reply?.status, 429, 'third within 200 ms: the per-200ms window');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal((await h.run()).forwarded, true, 'the refusal did not use up the hourly window');
  const r = await h.run();
  assert.equal(r.reply?.status, 429);
  assert.match(r.reply?.message ?? '', /3 per 1h/);
  await h.close();
});

test('3. keys: consumer, jwt claim, header; a missing value shares the anonymous bucket', async () => {
  const byHeader = await pluginHarness(rateLimit, { key: 'header:x-tenant', limits: [{ max: 1, per: '1m' }] });
  assert.equal((await byHeader.run({ headers: { 'x-tenant': 'a' } })).forwarded, true);
  assert.equal((await byHeader.run({ headers: { 'x-tenant': 'b' } })).forwarded, true);
  assert.equal((await byHeader.run({ headers: { 'x-tenant': 'a' } })).reply?.status, 429);
  assert.equal((await byHeader.run()).forwarded, true);
  assert.equal((await byHeader.run()).reply?.status, 429, 'requests without the header share one bucket');
  await byHeader.close();
  await assert.rejects(runPlugin(rateLimit, { key: 'cookie', limits: [{ max: 1, per: '1s' }] }), /plugins\[0\]\.rate-limit\.key/);
  await assert.rejects(runPlugin(rateLimit, { limits: [] }), /limits/);
});

test('4. trusted proxies: X-Forwarded-For is read from the right, only behind a trusted peer', () => {
  const p = new TrustedProxies(['10.0.0.0/8', 'fd00::/8']);
  assert.equal(p.clientOf('10.1.1.1', '203.0.113.7, 10.2.2.2'), '203.0.113.7');
  assert.equal(p.clientOf('::ffff:10.1.1.1', '198.51.100.1, 203.0.113.7'), '203.0.113.7', 'spoofed entries left of the first untrusted hop are ignored');
  assert.equal(p.clientOf('192.0.2.9', '203.0.113.7'), '192.0.2.9', 'an untrusted peer is the client, whatever it claims');
  assert.equal(p.clientOf('fd00::1', '2001:db8::5'), '2001:db8::5');
  assert.equal(p.clientOf('10.1.1.1', 'not-an-ip'), '10.1.1.1');
  assert.throws(() => new TrustedProxies(['10.0.0.0/33']), /prefix/);
  assert.throws(() => new TrustedProxies(['example.com']), /not an IP/);
});

test('5. dry-run: a would-be 429 is counted and the request passes', async () => {
  const registry = new Registry();
  const h = await pluginHarness(rateLimit, { key: 'route', limits: [{ max: 1, per: '1m' }] }, { dryRun: true, registry });
  assert.equal((await h.run()).forwarded, true);
  assert.equal((await h.run()).forwarded, true);
  const text = await registry.metrics();
  assert.match(text, /meshgate_plugin_dry_run_total\{plugin="rate-limit",route="test",code="RATE_LIMITED"\} 1/);
  await h.close();
});

test('6. store down: fail-open decides with the local backstop (same limits); fail-closed answers 503', async () => {
  const registry = new Registry();
  const open = await pluginHarness(rateLimit, { key: 'route', limits: [{ max: 2, per: '1m' }], whenStoreDown: 'fail-open' }, { rateLimits: down, registry });
  assert.equal((await open.run()).forwarded, true);
  assert.equal((await open.run()).forwarded, true);
  assert.equal((await open.run()).reply?.status, 429, 'the backstop still limits');
  assert.match(await registry.metrics(), /meshgate_plugin_rate_limit_store_errors_total\{route="test",mode="fail-open"\} 3/);
  await open.close();

  const closed = await pluginHarness(rateLimit, { key: 'route', limits: [{ max: 2, per: '1m' }], whenStoreDown: 'fail-closed' }, { rateLimits: down });
  const r = await closed.run();
  assert.equal(r.reply?.status, 503);
  assert.equal(r.reply?.code, 'RATE_LIMIT_UNAVAILABLE');
  await closed.close();
});

test('7. buckets belong to the entry: the same caller on two harnesses (routes) counts separately only when scoped apart', async () => {
  const shared = new MemoryRateLimits();
  const a = await pluginHarness(rateLimit, { key: 'ip', limits: [{ max: 1, per: '1m' }] }, { rateLimits: shared });
  const b = await pluginHarness(rateLimit, { key: 'ip', limits: [{ max: 2, per: '1m' }] }, { rateLimits: shared });
  assert.equal((await a.run({ clientIp: '10.9.9.9' })).forwarded, true);
  assert.equal((await b.run({ clientIp: '10.9.9.9' })).forwarded, true, 'different limits: a different bucket');
  assert.equal((await a.run({ clientIp: '10.9.9.9' })).reply?.status, 429);
  await a.close();
  await b.close();
});

/** A global-level instance (env.route ''), called with minimal request contexts for any route. */
async function globalInstance(config: Record<string, unknown>) {
  const env = {
    place: 'edge' as const,
    route: '',
    service: '',
    log: pino({ level: 'silent' }),
    metrics: pluginChainMetrics(new Registry()).forPlugins,
    rateLimits: new MemoryRateLimits(),
    baseDir: process.cwd(),
    dryRun: false,
  };
  const handlers = await rateLimit.create({ whenStoreDown: 'fail-open', headers: true, trustedProxies: [], lease: '50ms', ...config } as never, env);
  return async (route: string, headers: Record<string, string> = {}, clientIp = '10.0.0.1') => {
    const ctx = {
      route,
      clientIp,
      claims: undefined,
      consumer: undefined,
      header: (n: string) => headers[n],
      addResponseHeader: () => {},
    } as unknown as RequestContext;
    const r = await handlers.onRequest!(ctx);
    return r ? r.status : 200;
  };
}

test('8. a global entry: key route gives each route its own bucket; key ip shares one bucket per caller across routes', async () => {
  const byRoute = await globalInstance({ key: 'route', limits: [{ max: 1, per: '1m' }] });
  assert.deepEqual([await byRoute('a'), await byRoute('b'), await byRoute('a'), await byRoute('b')], [200, 200, 429, 429]);
  const byIp = await globalInstance({ key: 'ip', limits: [{ max: 1, per: '1m' }] });
  assert.deepEqual([await byIp('a'), await byIp('b'), await byIp('b', {}, '10.0.0.2')], [200, 429, 200]);
});

test('9. the anonymous bucket is not a caller named "anonymous"', async () => {
  const h = await globalInstance({ key: 'header:x-user', limits: [{ max: 1, per: '1m' }] });
  assert.equal(await h('r'), 200, 'no header: the anonymous bucket');
  assert.equal(await h('r', { 'x-user': 'anonymous' }), 200, 'a caller who sends "anonymous" has a bucket of its own');
  assert.equal(await h('r'), 429);
  assert.equal(await h('r', { 'x-user': 'anonymous' }), 429);
});

test('10. a busy caller\'s requests waiting on one check when the store fails: each gets whenStoreDown\'s answer', async () => {
  // 1,000,000/s: sliced (slices of up to 50,000 units per 50 ms lease), so requests share checks.
  const limits = [{ max: 1_000_000, per: '1s' }];
  for (const [mode, status] of [['fail-open', undefined], ['fail-closed', 503]] as const) {
    const h = await pluginHarness(rateLimit, { key: 'header:x-user', limits, whenStoreDown: mode }, { rateLimits: down });
    const runs = await Promise.all(Array.from({ length: 20 }, () => h.run({ headers: { 'x-user': 'busy' } })));
    for (const r of runs) {
      assert.equal(r.forwarded, status === undefined, mode);
      if (status !== undefined) assert.equal(r.reply?.code, 'RATE_LIMIT_UNAVAILABLE');
    }
    await h.close();
  }
});

test('11. a lease over 10s is a config error', async () => {
  await assert.rejects(pluginHarness(rateLimit, { key: 'ip', limits: [{ max: 100, per: '1s' }], lease: '11s' }), /lease: at most 10s/);
});
