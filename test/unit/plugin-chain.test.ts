// The plugin chain's semantics, through compileChains with a small in-test registry and a fake
// exchange: order (global → service → route), in-place override, local replies ending the chain
// while the response and log phases still run, async handlers, staged response headers, header
// edits keeping the deadline slots right, invalid replies and failing plugins.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Exchange } from '../../mesh-proxy/client/exchange.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import { definePlugin, type PluginDefinition, type ResponseContext } from '../../plugins/api.ts';
import { pluginChainMetrics, type PluginChainMetrics } from '../../plugins/chain-metrics.ts';
import { compileChains, type PluginEntry } from '../../plugins/compile.ts';
import type { PluginContext } from '../../plugins/context.ts';

/** What the probes did, in order: "<tag>:<phase>". */
let calls: string[] = [];

const ProbeConfig = Type.Object(
  {
    tag: Type.String(),
    reply: Type.Optional(Type.Integer()),
    async: Type.Boolean({ default: false }),
    stage: Type.Optional(Type.String()),
    throws: Type.Optional(Type.Union([Type.Literal('sync'), Type.Literal('async')])),
    remove: Type.Optional(Type.String()),
    set: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** A probe plugin under a name of its own (a chain holds each name once). */
function probe(name: string): PluginDefinition {
  return definePlugin({
    name,
    schema: ProbeConfig,
    create(c) {
      return {
        onRequest(ctx) {
          calls.push(`${c.tag}:onRequest`);
          if (c.stage) ctx.addResponseHeader('x-staged', c.stage);
          if (c.remove) ctx.removeHeader(c.remove);
          if (c.set) ctx.setHeader(c.set, 'set-by-plugin');
          if (c.throws === 'sync') throw new Error(`${c.tag} broke`);
          const answer = c.reply === undefined ? undefined : { status: c.reply, code: `TAG_${c.tag.toUpperCase()}`, message: c.tag };
          if (c.throws === 'async') return new Promise((_r, reject) => setTimeout(() => reject(new Error(`${c.tag} broke later`)), 5));
          if (c.async) return new Promise((r) => setTimeout(() => r(answer), 5));
          return answer;
        },
        beforeUpstream(ctx) {
          calls.push(`${c.tag}:beforeUpstream`);
          ctx.setHeader('x-order', `${ctx.header('x-order') ?? ''}${c.tag}`);
        },
        onResponse(ctx) {
          calls.push(`${c.tag}:onResponse:${ctx.status}:${ctx.local}`);
        },
        onLog(ctx) {
          calls.push(`${c.tag}:onLog:${ctx.status}`);
        },
      };
    },
  }) as PluginDefinition;
}

const registry = new Map(['p-a', 'p-b', 'p-c', 'p-d'].map((n) => [n, probe(n)]));
const silent = pino({ level: 'silent' });

/** Just what the chain and the context touch of an Exchange. */
class FakeExchange {
  readonly method = 'GET';
  readonly startedAt = performance.now();
  readonly req = { socket: { remoteAddress: '127.0.0.1' } };
  headers: string[];
  requestId = 'rid-1';
  route = 'r1';
  service = 'svc';
  path = '/';
  contentLength = -1;
  hasBody = false;
  timeoutSlot = -1;
  grpcTimeoutSlot = -1;
  statusCode = 0;
  errorCode: string | undefined;
  done = false;
  hooks: PluginContext | undefined;
  replied: { status: number; code?: string; headers: string[] } | undefined;

  constructor(headers: string[]) {
    this.headers = headers;
  }

  reply(status: number, code: string | undefined, _message: string | undefined, headers: Record<string, string> | undefined): void {
    this.done = true;
    this.statusCode = status;
    this.errorCode = code;
    const extra: string[] = [];
    for (const k in headers ?? {}) extra.push(k, headers![k]);
    this.hooks?.onResponse(this as unknown as Exchange, status, extra, true);
    this.replied = { status, code, headers: extra };
    this.hooks?.onFinished();
  }

  limitBody(): void {}

  /** What the mesh client does with an upstream answer. */
  upstreamAnswer(status: number, headers: string[] = []): string[] {
    this.statusCode = status;
    this.hooks!.onResponse(this as unknown as Exchange, status, headers, false);
    this.done = true;
    this.hooks!.onFinished();
    return headers;
  }
}

interface Setup {
  global?: PluginEntry[];
  services?: Record<string, PluginEntry[]>;
  route?: PluginEntry[];
}

async function chainFor(s: Setup, metrics: PluginChainMetrics = pluginChainMetrics(new Registry())) {
  const set = await compileChains({
    file: 'test.yaml',
    place: 'edge',
    registry,
    global: s.global ?? [],
    globalPath: 'plugins.global',
    services: s.services ?? {},
    servicesPath: 'plugins.services',
    targets: [{ route: 'r1', service: 'svc', entries: s.route ?? [], path: 'routes[0].plugins' }],
    log: silent,
    metrics,
    rateLimits: new MemoryRateLimits(),
    baseDir: process.cwd(),
  });
  return { set, chain: set.chains.get('r1')! };
}

/** Runs the request phases; resolves 'forwarded' or 'replied' once the chain is through. */
async function run(s: Setup, headers: string[] = [], metrics?: PluginChainMetrics) {
  calls = [];
  const { chain, set } = await chainFor(s, metrics);
  const ex = new FakeExchange(headers);
  const outcome = await new Promise<'forwarded' | 'replied'>((resolve) => {
    const reply = ex.reply.bind(ex);
    ex.reply = (...a) => (reply(...a), resolve('replied'));
    chain.run(ex as unknown as Exchange, { path: '/', query: '', host: 'localhost', identity: undefined }, { proceed: () => resolve('forwarded') });
  });
  await set.close();
  return { ex, outcome, chain };
}

describe('plugin chain order', () => {
  test('global, then service, then route, each in file order', async () => {
    const { ex, outcome } = await run({
      global: [{ 'p-a': { tag: 'g' } }],
      services: { svc: [{ 'p-b': { tag: 's' } }], other: [{ 'p-d': { tag: 'x' } }] },
      route: [{ 'p-c': { tag: 'r' } }],
    });
    assert.equal(outcome, 'forwarded');
    assert.deepEqual(calls, ['g:onRequest', 's:onRequest', 'r:onRequest', 'g:beforeUpstream', 's:beforeUpstream', 'r:beforeUpstream']);
    assert.deepEqual(ex.headers, ['x-order', 'gsr']);
  });

  test('a route entry replaces a same-named global entry in its place', async () => {
    const { chain, outcome } = await run({
      global: [{ 'p-a': { tag: 'g1' } }, { 'p-b': { tag: 'g2' } }],
      route: [{ 'p-c': { tag: 'r' } }, { 'p-a': { tag: 'r-a' }, dryRun: true }],
    });
    assert.equal(outcome, 'forwarded');
    assert.deepEqual(chain.links.map((l) => [l.name, l.level, l.dryRun]), [['p-a', 'route', true], ['p-b', 'global', false], ['p-c', 'route', false]]);
    assert.deepEqual(calls.filter((c) => c.endsWith('onRequest')), ['r-a:onRequest', 'g2:onRequest', 'r:onRequest']);
  });

  test('a service entry replaces a global one; a route entry replaces the service one', async () => {
    const { chain } = await run({
      global: [{ 'p-a': { tag: 'g' } }],
      services: { svc: [{ 'p-a': { tag: 's' } }, { 'p-b': { tag: 's2' } }] },
      route: [{ 'p-b': { tag: 'r' } }],
    });
    assert.deepEqual(chain.links.map((l) => `${l.name}/${l.level}`), ['p-a/service', 'p-b/route']);
    assert.deepEqual(calls.filter((c) => c.endsWith('onRequest')), ['s:onRequest', 'r:onRequest']);
  });
});

describe('local replies', () => {
  test('end the chain; onResponse and onLog still run for every plugin', async () => {
    const { ex, outcome } = await run({ route: [{ 'p-a': { tag: 'a' } }, { 'p-b': { tag: 'b', reply: 401 } }, { 'p-c': { tag: 'c' } }] });
    assert.equal(outcome, 'replied');
    assert.equal(ex.replied?.status, 401);
    assert.equal(ex.replied?.code, 'TAG_B');
    assert.deepEqual(calls, [
      'a:onRequest', 'b:onRequest',
      'a:onResponse:401:true', 'b:onResponse:401:true', 'c:onResponse:401:true',
      'a:onLog:401', 'b:onLog:401', 'c:onLog:401',
    ]);
  });

  test('an async onRequest resumes the chain, or answers', async () => {
    const through = await run({ route: [{ 'p-a': { tag: 'a', async: true } }, { 'p-b': { tag: 'b', async: true } }, { 'p-c': { tag: 'c' } }] });
    assert.equal(through.outcome, 'forwarded');
    assert.deepEqual(calls, ['a:onRequest', 'b:onRequest', 'c:onRequest', 'a:beforeUpstream', 'b:beforeUpstream', 'c:beforeUpstream']);
    const answered = await run({ route: [{ 'p-a': { tag: 'a', async: true } }, { 'p-b': { tag: 'b', async: true, reply: 429 } }, { 'p-c': { tag: 'c' } }] });
    assert.equal(answered.outcome, 'replied');
    assert.equal(answered.ex.replied?.status, 429);
    assert.ok(!calls.includes('c:onRequest'));
  });

  test('staged response headers reach both local and upstream replies', async () => {
    const local = await run({ route: [{ 'p-a': { tag: 'a', stage: 'one' } }, { 'p-b': { tag: 'b', reply: 403, stage: 'two' } }] });
    assert.deepEqual(local.ex.replied?.headers, ['x-staged', 'one', 'x-staged', 'two']);
    const up = await run({ route: [{ 'p-a': { tag: 'a', stage: 'one' } }] });
    assert.equal(up.outcome, 'forwarded');
    assert.deepEqual(up.ex.upstreamAnswer(200, ['content-type', 'text/plain']), ['content-type', 'text/plain', 'x-staged', 'one']);
    assert.deepEqual(calls.slice(-2), ['a:onResponse:200:false', 'a:onLog:200']);
  });

  test('an invalid reply (status 42) fails the request with 500 PLUGIN_FAILED', async () => {
    const metrics = pluginChainMetrics(new Registry());
    const { ex } = await run({ route: [{ 'p-a': { tag: 'a', reply: 42 } }, { 'p-b': { tag: 'b' } }] }, [], metrics);
    assert.equal(ex.replied?.status, 500);
    assert.equal(ex.replied?.code, 'PLUGIN_FAILED');
    assert.equal((await metrics.errors.get()).values.find((v) => v.labels.plugin === 'p-a')?.value, 1);
  });
});

describe('failing plugins', () => {
  for (const how of ['sync', 'async'] as const) {
    test(`${how === 'sync' ? 'a' : 'an'} ${how} throw answers 500 PLUGIN_FAILED and is counted`, async () => {
      const metrics = pluginChainMetrics(new Registry());
      const { ex } = await run({ route: [{ 'p-a': { tag: 'a', throws: how } }, { 'p-b': { tag: 'b' } }] }, [], metrics);
      assert.equal(ex.replied?.status, 500);
      assert.equal(ex.replied?.code, 'PLUGIN_FAILED');
      assert.ok(!calls.includes('b:onRequest'));
      assert.deepEqual((await metrics.errors.get()).values.map((v) => [v.labels, v.value]), [[{ plugin: 'p-a', route: 'r1' }, 1]]);
    });

    test(`${how === 'sync' ? 'a' : 'an'} ${how} throw in dry-run is counted and the request goes on`, async () => {
      const metrics = pluginChainMetrics(new Registry());
      const { outcome } = await run({ route: [{ 'p-a': { tag: 'a', throws: how }, dryRun: true }, { 'p-b': { tag: 'b' } }] }, [], metrics);
      assert.equal(outcome, 'forwarded');
      assert.ok(calls.includes('b:onRequest'));
      assert.equal((await metrics.errors.get()).values[0]?.value, 1);
    });
  }

  test('a dry-run reply is counted, not sent', async () => {
    const metrics = pluginChainMetrics(new Registry());
    const { outcome } = await run({ route: [{ 'p-a': { tag: 'a', reply: 403 }, dryRun: true }] }, [], metrics);
    assert.equal(outcome, 'forwarded');
    assert.deepEqual((await metrics.dryRun.get()).values.map((v) => [v.labels, v.value]), [[{ plugin: 'p-a', route: 'r1', code: 'TAG_A' }, 1]]);
    assert.equal((await metrics.replies.get()).values.length, 0);
  });
});

describe('header edits keep the deadline slots right', () => {
  // The exchange's list as forwardRequestHeaders leaves it: the deadline value slots are indices.
  const base = () => ['accept', '*/*', 'x-drop', '1', 'traceparent', 'tp', 'x-meshgate-timeout-ms', '', 'grpc-timeout', '', 'x-after', 'z'];

  async function edited(cfg: Record<string, unknown>) {
    calls = [];
    const { chain, set } = await chainFor({ route: [{ 'p-a': { tag: 'a', ...cfg } }] });
    const ex = new FakeExchange(base());
    ex.timeoutSlot = 7;
    ex.grpcTimeoutSlot = 9;
    await new Promise<void>((resolve) => chain.run(ex as unknown as Exchange, { path: '/', query: '', host: 'h', identity: undefined }, { proceed: () => resolve() }));
    await set.close();
    return ex;
  }

  test('removing a header before the slots shifts them', async () => {
    const ex = await edited({ remove: 'X-Drop' });
    assert.equal(ex.headers[ex.timeoutSlot - 1], 'x-meshgate-timeout-ms');
    assert.equal(ex.headers[ex.grpcTimeoutSlot - 1], 'grpc-timeout');
  });

  test('removing a header after the slots leaves them', async () => {
    const ex = await edited({ remove: 'x-after' });
    assert.equal(ex.timeoutSlot, 7);
    assert.equal(ex.grpcTimeoutSlot, 9);
  });

  test('removing the deadline header itself clears its slot, never points at a neighbour', async () => {
    const ex = await edited({ remove: 'x-meshgate-timeout-ms' });
    assert.equal(ex.timeoutSlot, -1);
    assert.equal(ex.headers[ex.grpcTimeoutSlot - 1], 'grpc-timeout');
    const g = await edited({ remove: 'grpc-timeout' });
    assert.equal(g.grpcTimeoutSlot, -1);
    assert.equal(g.timeoutSlot, 7);
  });

  test('setHeader on a repeated header drops the later copies and shifts the slots', async () => {
    calls = [];
    const { chain, set } = await chainFor({ route: [{ 'p-a': { tag: 'a', set: 'x-dup' } }] });
    const ex = new FakeExchange(['x-dup', '1', 'x-dup', '2', 'x-meshgate-timeout-ms', '']);
    ex.timeoutSlot = 5;
    await new Promise<void>((resolve) => chain.run(ex as unknown as Exchange, { path: '/', query: '', host: 'h', identity: undefined }, { proceed: () => resolve() }));
    await set.close();
    assert.deepEqual(ex.headers.slice(0, 2), ['x-dup', 'set-by-plugin']);
    assert.equal(ex.headers[ex.timeoutSlot - 1], 'x-meshgate-timeout-ms');
  });
});

describe('response headers outside the response phase', () => {
  test('setResponseHeader in onLog is a plugin error, not a header leaking into other requests', async () => {
    const leaky = definePlugin({
      name: 'leaky',
      schema: Type.Object({}),
      create: () => ({
        onLog(ctx) {
          // The types forbid it; a JavaScript plugin (or one keeping its ResponseContext) can still.
          (ctx as unknown as ResponseContext).setResponseHeader('x-leak', 'yes');
        },
        onResponse(ctx) {
          calls.push(`leaky:onResponse:${ctx.responseHeader('x-leak') ?? 'none'}`);
        },
      }),
    }) as PluginDefinition;
    const metrics = pluginChainMetrics(new Registry());
    const set = await compileChains({
      file: 'test.yaml', place: 'edge', registry: new Map([['leaky', leaky]]), global: [], globalPath: 'plugins.global',
      services: {}, servicesPath: 'plugins.services', targets: [{ route: 'r1', service: 'svc', entries: [{ leaky: {} }], path: 'routes[0].plugins' }],
      log: silent, metrics, rateLimits: new MemoryRateLimits(), baseDir: process.cwd(),
    });
    calls = [];
    for (let i = 0; i < 2; i++) {
      const ex = new FakeExchange([]);
      await new Promise<void>((resolve) => set.chains.get('r1')!.run(ex as unknown as Exchange, { path: '/', query: '', host: 'h', identity: undefined }, { proceed: () => resolve() }));
      ex.upstreamAnswer(200);
    }
    await set.close();
    assert.deepEqual(calls, ['leaky:onResponse:none', 'leaky:onResponse:none']);
    assert.equal((await metrics.errors.get()).values[0]?.value, 2);
  });
});
