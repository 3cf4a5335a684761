// An instance's SPIFFE identity survives the Redis registry (snapshot and change events), and a
// record written before identities existed still reads as a plaintext instance.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../../config/load.ts';
import { createStore } from '../../mesh-proxy/store/create-store.ts';
import type { Instance, RegistryEvent, Store } from '../../mesh-proxy/store/types.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/ports.ts';

let redis: RedisServer;
let store: Store;

before(async () => {
  redis = await RedisServer.start();
  const cfg = buildProxyConfig({ node: { service: 'x' }, app: { port: 1 }, store: { kind: 'redis', url: redis.url } }, 'test', {});
  store = await createStore(cfg.store, createLogger({ level: 'silent' }, {}));
  assert.ok(await store.ready(5000));
});
after(async () => {
  await store?.close();
  await redis?.stop();
});

test('identity round-trips through the Redis registry; records without one still work', async () => {
  const events: RegistryEvent[] = [];
  const stop = store.registry.watch((e) => events.push(e));
  const withId: Instance = { service: 'catalog', id: 'c1', address: '127.0.0.1', port: 4143, dc: 'local', zone: '', metadata: {}, identity: 'spiffe://cluster.local/ns/default/sa/catalog' };
  const old: Instance = { service: 'catalog', id: 'c0', address: '127.0.0.1', port: 4144, dc: 'local', zone: '', metadata: {} };
  await store.registry.register(withId, 10_000);
  await store.registry.register(old, 10_000);
  const snap = await store.registry.snapshot();
  assert.deepEqual(snap.find((i) => i.id === 'c1'), withId);
  assert.deepEqual(snap.find((i) => i.id === 'c0'), old);
  const up = await waitFor('the up event', () => events.find((e) => e.kind === 'up' && e.instance.id === 'c1'), 5000);
  assert.equal(up.kind === 'up' ? up.instance.identity : undefined, withId.identity);
  stop();
});
