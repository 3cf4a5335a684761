// The endpoint cache over the in-memory store (events, TTL, resync, identity), its disk snapshot
// fallback when the store is away, and round-robin selection.
import { MemorySplits } from '../../mesh-proxy/store/memory/memory-splits.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EndpointCache } from '../../mesh-proxy/discovery/endpoint-cache.ts';
import { Endpoint } from '../../mesh-proxy/discovery/endpoint.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { MemoryRegistry } from '../../mesh-proxy/store/memory/memory-registry.ts';
import type { Instance, Registry, RegistryEvent, Store, StoreStatus } from '../../mesh-proxy/store/types.ts';
import { RoundRobin } from '../../mesh-proxy/balancer/round-robin.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { Metrics } from '../../mesh-proxy/observe/metrics.ts';
import { tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/ports.ts';

const log = createLogger({ level: 'silent' }, {});
const TTL = 60_000;

function inst(service: string, id: string, extra: Partial<Instance> = {}): Instance {
  const n = Number(id.replace(/\D/g, '')) || 1;
  return { service, id, address: `10.0.0.${n}`, port: 4143, dc: 'dc1', zone: 'dc1-a', metadata: { version: 'v1' }, ...extra };
}

const dirs: string[] = [];
const cleanups: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function stateFile(): string {
  const d = tempDir('meshgate-discovery-');
  dirs.push(d);
  return join(d, 'state', 'endpoints.json');
}

function newCache(store: Store, snapshotFile = stateFile(), metrics = new Metrics('dc1')): EndpointCache {
  const cache = new EndpointCache({ store, resyncMs: 60_000, snapshotFile, log, metrics, startTimeoutMs: 50, reconnectGraceMs: 0 });
  cleanups.push(() => cache.stop());
  return cache;
}

function memoryStore(): MemoryStore {
  const store = new MemoryStore();
  cleanups.push(() => store.close());
  return store;
}

function ids(cache: EndpointCache, service: string): string[] {
  return (cache.get(service)?.endpoints ?? []).map((e) => e.instance.id).sort();
}

async function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  await waitFor(what, () => (cond() ? true : undefined), timeoutMs, 10);
}

/** A store whose registry answers what the test says, when the test says. */
class FakeRegistry implements Registry {
  instances: Instance[] = [];
  failure: Error | undefined;
  gate: Promise<void> | undefined;
  snapshots = 0;
  readonly listeners = new Set<(e: RegistryEvent) => void>();

  async register(): Promise<void> {}
  async deregister(): Promise<void> {}
  async snapshot(): Promise<Instance[]> {
    this.snapshots++;
    if (this.gate) await this.gate;
    if (this.failure) throw this.failure;
    return [...this.instances];
  }
  watch(listener: (e: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(e: RegistryEvent): void {
    for (const l of this.listeners) l(e);
  }
}

class FakeStore implements Store {
  readonly kind = 'redis' as const;
  readonly rateLimits = new MemoryRateLimits();
  readonly splits = new MemorySplits();
  readonly registry = new FakeRegistry();
  readonly breakers = {
    async publishOpen(): Promise<void> {},
    async publishClose(): Promise<void> {},
    async listOpen(): Promise<never[]> {
      return [];
    },
    watch(): () => void {
      return () => {};
    },
  };
  status: StoreStatus;
  readonly #statusListeners: Array<(s: StoreStatus) => void> = [];
  readonly #connected: boolean;

  constructor(connected: boolean) {
    this.#connected = connected;
    this.status = connected ? 'up' : 'down';
    if (!connected) this.registry.failure = new Error('connect ECONNREFUSED');
  }
  onStatus(listener: (s: StoreStatus) => void): void {
    this.#statusListeners.push(listener);
  }
  async ready(): Promise<boolean> {
    return this.#connected;
  }
  async close(): Promise<void> {}
  setStatus(s: StoreStatus): void {
    this.status = s;
    for (const l of this.#statusListeners) l(s);
  }
}

describe('EndpointCache over the memory store', () => {
  test('register → event → the cache has the endpoint', async () => {
    const store = memoryStore();
    const cache = newCache(store);
    const changes: string[] = [];
    cache.onChange((s) => changes.push(s));
    await cache.start();
    assert.equal(cache.source, 'store');
    assert.ok(cache.lastSyncAt > 0);
    assert.equal(cache.get('catalog'), undefined);

    await store.registry.register(inst('catalog', 'c1'), TTL);
    await until('catalog endpoint', () => ids(cache, 'catalog').length === 1);
    const [ep] = cache.get('catalog')!.endpoints;
    assert.ok(ep instanceof Endpoint);
    assert.equal(ep.authority, '10.0.0.1:4143');
    assert.equal(ep.origin, 'http://10.0.0.1:4143');
    assert.deepEqual(ep.instance, inst('catalog', 'c1'));
    assert.deepEqual(changes, ['catalog']);
    assert.ok(Object.isFrozen(cache.get('catalog')!.endpoints));

    await store.registry.register(inst('catalog', 'c2'), TTL);
    await store.registry.register(inst('orders', 'o1'), TTL);
    await until('three endpoints', () => ids(cache, 'catalog').length === 2 && ids(cache, 'orders').length === 1);
    assert.deepEqual([...cache.services()].map((s) => s.service).sort(), ['catalog', 'orders']);
  });

  test('instances registered before start come from the initial sync', async () => {
    const store = memoryStore();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await store.registry.register(inst('catalog', 'c2'), TTL);
    const cache = newCache(store);
    await cache.start();
    assert.deepEqual(ids(cache, 'catalog'), ['c1', 'c2']);
  });

  test('deregister → removed', async () => {
    const store = memoryStore();
    const cache = newCache(store);
    await cache.start();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await store.registry.register(inst('catalog', 'c2'), TTL);
    await until('two endpoints', () => ids(cache, 'catalog').length === 2);
    await store.registry.deregister('catalog', 'c1');
    await until('c1 removed', () => ids(cache, 'catalog').length === 1);
    assert.deepEqual(ids(cache, 'catalog'), ['c2']);
    // Deregistering an unknown instance changes nothing.
    await store.registry.deregister('catalog', 'nope');
    await store.registry.deregister('nope', 'c2');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ids(cache, 'catalog'), ['c2']);
  });

  test('an instance whose TTL lapses disappears', async () => {
    const store = memoryStore();
    const cache = newCache(store);
    await cache.start();
    const registeredAt = Date.now();
    await store.registry.register(inst('catalog', 'c1'), 300);
    await store.registry.register(inst('catalog', 'c2'), TTL);
    await until('both present', () => ids(cache, 'catalog').length === 2);
    // The registry sweeps every 500 ms: gone within TTL + one sweep, never before the TTL.
    await until('c1 expired', () => ids(cache, 'catalog').length === 1, 3000);
    assert.ok(Date.now() - registeredAt >= 290, `removed after ${Date.now() - registeredAt} ms, before its TTL`);
    assert.deepEqual(ids(cache, 'catalog'), ['c2']);
    assert.deepEqual((await store.registry.snapshot()).map((i) => i.id), ['c2']);
  });

  test('a heartbeat renews the TTL without an event', async () => {
    const registry = new MemoryRegistry(20);
    cleanups.push(() => registry.close());
    const events: RegistryEvent[] = [];
    registry.watch((e) => events.push(e));
    const i = inst('catalog', 'c1');
    // Renewed every 50 ms with a 400 ms TTL, swept every 20 ms: alive past its first TTL, never
    // re-announced.
    const start = Date.now();
    await registry.register(i, 400);
    for (let k = 0; k < 40 && Date.now() - start < 600; k++) {
      await new Promise((r) => setTimeout(r, 50));
      await registry.register(i, 400);
    }
    assert.ok(Date.now() - start >= 400);
    assert.deepEqual((await registry.snapshot()).map((x) => x.id), ['c1']);
    assert.deepEqual(events.map((e) => e.kind), ['up']);
  });

  test('endpoint objects keep their identity while the instance is unchanged', async () => {
    const store = memoryStore();
    const cache = newCache(store);
    await cache.start();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await store.registry.register(inst('catalog', 'c2'), TTL);
    await until('two endpoints', () => ids(cache, 'catalog').length === 2);
    const byId = () => new Map(cache.get('catalog')!.endpoints.map((e) => [e.instance.id, e]));
    const before = byId();

    // Heartbeats (same instance) and resyncs leave both objects alone.
    await store.registry.register(inst('catalog', 'c1'), TTL);
    assert.equal(await cache.resync(), true);
    assert.equal(byId().get('c1'), before.get('c1'));
    assert.equal(byId().get('c2'), before.get('c2'));

    // A changed instance gets a new object; the other keeps its own.
    await store.registry.register(inst('catalog', 'c1', { metadata: { version: 'v2' } }), TTL);
    await until('c1 updated', () => byId().get('c1')?.instance.metadata.version === 'v2');
    assert.notEqual(byId().get('c1'), before.get('c1'));
    assert.equal(byId().get('c2'), before.get('c2'));
    assert.equal(await cache.resync(), true);
    assert.equal(byId().get('c2'), before.get('c2'));
  });

  test('the endpoints gauge counts per service and dc', async () => {
    const store = memoryStore();
    const metrics = new Metrics('dc1');
    const cache = newCache(store, stateFile(), metrics);
    await cache.start();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await store.registry.register(inst('catalog', 'c2', { dc: 'dc2' }), TTL);
    await store.registry.register(inst('catalog', 'c3'), TTL);
    await until('three endpoints', () => ids(cache, 'catalog').length === 3);
    const text = await metrics.registry.getSingleMetricAsString('meshgate_discovery_endpoints');
    assert.match(text, /meshgate_discovery_endpoints\{service="catalog",dc="dc1"\} 2/);
    assert.match(text, /meshgate_discovery_endpoints\{service="catalog",dc="dc2"\} 1/);
    assert.match(await metrics.registry.getSingleMetricAsString('meshgate_store_up'), /meshgate_store_up 1/);
  });

  test('after stop(), events no longer change the view', async () => {
    const store = memoryStore();
    const cache = newCache(store);
    await cache.start();
    await cache.stop();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(cache.get('catalog'), undefined);
    assert.equal(await cache.resync(), false);
  });
});

describe('EndpointCache resync', () => {
  test('a resync replaces the view with the store’s', async () => {
    const store = new FakeStore(true);
    store.registry.instances = [inst('a', 'a1'), inst('a', 'a2'), inst('b', 'b1')];
    const cache = newCache(store);
    const changes: string[] = [];
    cache.onChange((s) => changes.push(s));
    await cache.start();
    assert.deepEqual(ids(cache, 'a'), ['a1', 'a2']);
    assert.deepEqual(ids(cache, 'b'), ['b1']);
    const a2 = cache.get('a')!.endpoints.find((e) => e.instance.id === 'a2');
    const aView = cache.get('a')!.endpoints;

    changes.length = 0;
    store.registry.instances = [inst('a', 'a2'), inst('a', 'a3'), inst('c', 'c1')];
    assert.equal(await cache.resync(), true);
    assert.deepEqual(ids(cache, 'a'), ['a2', 'a3']);
    assert.deepEqual(ids(cache, 'b'), []);
    assert.deepEqual(ids(cache, 'c'), ['c1']);
    assert.equal(cache.get('a')!.endpoints.find((e) => e.instance.id === 'a2'), a2);
    assert.notEqual(cache.get('a')!.endpoints, aView, 'the list is swapped, not mutated');
    assert.deepEqual(aView.map((e) => e.instance.id).sort(), ['a1', 'a2']);
    assert.deepEqual(changes.sort(), ['a', 'b', 'c']);

    // An identical snapshot changes nothing.
    changes.length = 0;
    const view = cache.get('a')!.endpoints;
    assert.equal(await cache.resync(), true);
    assert.equal(cache.get('a')!.endpoints, view);
    assert.deepEqual(changes, []);
  });

  test('a failed resync keeps the last known endpoints', async () => {
    const store = new FakeStore(true);
    store.registry.instances = [inst('a', 'a1')];
    const cache = newCache(store);
    await cache.start();
    const syncedAt = cache.lastSyncAt;
    store.registry.failure = new Error('timeout');
    assert.equal(await cache.resync(), false);
    assert.deepEqual(ids(cache, 'a'), ['a1']);
    assert.equal(cache.source, 'store');
    assert.equal(cache.lastSyncAt, syncedAt);
  });

  test('events that arrive during a resync are not undone by its older snapshot', async () => {
    const store = new FakeStore(true);
    store.registry.instances = [inst('a', 'a1'), inst('a', 'a2')];
    const cache = newCache(store);
    await cache.start();
    let release!: () => void;
    store.registry.gate = new Promise<void>((r) => (release = r));
    const before = store.registry.snapshots;
    const pending = cache.resync();
    // Callers during a resync share it: one snapshot, one answer.
    const second = cache.resync();
    store.registry.emit({ kind: 'up', instance: inst('a', 'a3') });
    store.registry.emit({ kind: 'down', service: 'a', id: 'a1' });
    // Events are applied at once, not held back until the resync ends.
    assert.deepEqual(ids(cache, 'a'), ['a2', 'a3']);
    release();
    assert.equal(await pending, true);
    assert.equal(await second, true);
    assert.equal(store.registry.snapshots - before, 1);
    store.registry.gate = undefined;
    // The snapshot (a1, a2) predates both events.
    assert.deepEqual(ids(cache, 'a'), ['a2', 'a3']);
    // Later resyncs run again.
    store.registry.instances = [inst('a', 'a2')];
    assert.equal(await cache.resync(), true);
    assert.deepEqual(ids(cache, 'a'), ['a2']);
  });

  test('the store coming back triggers a resync', async () => {
    const store = new FakeStore(true);
    const cache = newCache(store);
    await cache.start();
    store.registry.instances = [inst('a', 'a9')];
    const before = store.registry.snapshots;
    store.setStatus('up');
    await until('resynced', () => ids(cache, 'a').length === 1);
    assert.ok(store.registry.snapshots > before);
  });
});

describe('EndpointCache disk snapshot', () => {
  type Written = { file: string; saved: { version: number; savedAt: number; instances: Instance[] } };
  let written: Promise<Written> | undefined;
  /** One snapshot, written once by a real cache (the write is debounced by about a second) and shared by the tests below. */
  function writtenSnapshot(): Promise<Written> {
    written ??= writeSnapshotOnce();
    return written;
  }

  async function writeSnapshotOnce(): Promise<Written> {
    const store = memoryStore();
    const file = stateFile();
    const cache = newCache(store, file);
    await cache.start();
    await store.registry.register(inst('catalog', 'c1'), TTL);
    await store.registry.register(inst('catalog', 'c2', { metadata: { version: 'v2' } }), TTL);
    await store.registry.register(inst('orders', 'o1'), TTL);
    await until('three endpoints', () => ids(cache, 'catalog').length === 2 && ids(cache, 'orders').length === 1);
    let saved: { version: number; savedAt: number; instances: Instance[] } | undefined;
    await until(
      'the snapshot file',
      () => {
        if (!existsSync(file)) return false;
        saved = JSON.parse(readFileSync(file, 'utf8'));
        return saved!.instances.length === 3;
      },
      5000,
    );
    await cache.stop();
    return { file, saved: saved! };
  }

  test('is written after changes and read back when the store never becomes ready', async () => {
    const { file, saved } = await writtenSnapshot();
    assert.equal(saved.version, 1);
    assert.ok(saved.savedAt > Date.now() - 60_000 && saved.savedAt <= Date.now());
    assert.deepEqual(saved.instances.map((i) => i.id).sort(), ['c1', 'c2', 'o1']);
    assert.equal(statSync(file).mode & 0o777, 0o600);

    const down = new FakeStore(false);
    const cache = newCache(down, file);
    await cache.start();
    assert.equal(cache.source, 'disk');
    assert.equal(cache.lastSyncAt, saved.savedAt);
    assert.deepEqual(ids(cache, 'catalog'), ['c1', 'c2']);
    assert.deepEqual(ids(cache, 'orders'), ['o1']);
    const c2 = cache.get('catalog')!.endpoints.find((e) => e.instance.id === 'c2')!;
    assert.deepEqual(c2.instance, inst('catalog', 'c2', { metadata: { version: 'v2' } }));
    assert.equal(c2.authority, '10.0.0.2:4143');

    // When the store answers again, its view replaces the one from disk.
    down.registry.failure = undefined;
    down.registry.instances = [inst('catalog', 'c2', { metadata: { version: 'v2' } })];
    assert.equal(await cache.resync(), true);
    assert.equal(cache.source, 'store');
    assert.deepEqual(ids(cache, 'catalog'), ['c2']);
    assert.deepEqual(ids(cache, 'orders'), []);
    assert.equal(cache.get('catalog')!.endpoints[0], c2, 'an unchanged instance keeps its endpoint');
  });

  test('a connected store whose snapshot fails also falls back to disk', async () => {
    const { file } = await writtenSnapshot();
    const store = new FakeStore(true);
    store.registry.failure = new Error('NOSCRIPT');
    const cache = newCache(store, file);
    await cache.start();
    assert.equal(cache.source, 'disk');
    assert.deepEqual(ids(cache, 'catalog'), ['c1', 'c2']);
  });

  test('no snapshot and no store: empty, source none', async () => {
    const cache = newCache(new FakeStore(false));
    await cache.start();
    assert.equal(cache.source, 'none');
    assert.equal(cache.lastSyncAt, 0);
    assert.deepEqual([...cache.services()], []);
  });

  test('an unusable snapshot file is ignored', async () => {
    const bad: Array<[string, string]> = [
      ['not json', 'garbage{'],
      ['wrong version', JSON.stringify({ version: 2, savedAt: 1, instances: [inst('a', 'a1')] })],
      ['no savedAt', JSON.stringify({ version: 1, instances: [inst('a', 'a1')] })],
      ['instances not a list', JSON.stringify({ version: 1, savedAt: 1, instances: {} })],
    ];
    for (const [what, text] of bad) {
      const file = stateFile();
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, text);
      const cache = newCache(new FakeStore(false), file);
      await cache.start();
      assert.equal(cache.source, 'none', what);
      assert.deepEqual([...cache.services()], [], what);
    }
  });

  test('malformed instances in a snapshot are skipped', async () => {
    const file = stateFile();
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, JSON.stringify({ version: 1, savedAt: 1234, instances: [inst('a', 'a1'), { service: 'a', id: 'a2' }, null, 'x', { ...inst('a', 'a3'), port: '80' }] }));
    const cache = newCache(new FakeStore(false), file);
    await cache.start();
    assert.equal(cache.source, 'disk');
    assert.equal(cache.lastSyncAt, 1234);
    assert.deepEqual(ids(cache, 'a'), ['a1']);
  });
});

describe('RoundRobin', () => {
  const eps = (n: number) => Array.from({ length: n }, (_, i) => new Endpoint(inst('s', `s${i + 1}`)));

  test('cycles through the endpoints in order', () => {
    const rr = new RoundRobin();
    const list = eps(3);
    const picks = Array.from({ length: 7 }, () => rr.pick(list).instance.id);
    assert.deepEqual(picks, ['s1', 's2', 's3', 's1', 's2', 's3', 's1']);
  });

  test('spreads picks evenly', () => {
    const rr = new RoundRobin();
    const list = eps(4);
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const id = rr.pick(list).instance.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [100, 100, 100, 100]);
  });

  test('membership changes only change the modulus', () => {
    const rr = new RoundRobin();
    const five = eps(5);
    for (let i = 0; i < 4; i++) rr.pick(five);
    const two = five.slice(0, 2);
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const e = rr.pick(two);
      assert.ok(two.includes(e));
      counts.set(e.instance.id, (counts.get(e.instance.id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [50, 50]);
    const one = eps(1);
    for (let i = 0; i < 5; i++) assert.equal(rr.pick(one), one[0]);
  });

  test('independent balancers keep independent positions', () => {
    const list = eps(2);
    const a = new RoundRobin();
    const b = new RoundRobin();
    assert.equal(a.pick(list).instance.id, 's1');
    assert.equal(a.pick(list).instance.id, 's2');
    assert.equal(b.pick(list).instance.id, 's1');
  });
});

describe('Endpoint', () => {
  test('authority and origin, IPv6 in brackets', () => {
    assert.equal(new Endpoint(inst('s', 's1', { address: '::1', port: 4143 })).authority, '[::1]:4143');
    assert.equal(new Endpoint(inst('s', 's1', { address: 'catalog.internal', port: 80 })).origin, 'http://catalog.internal:80');
  });
});
