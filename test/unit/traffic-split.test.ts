// Traffic split specs and the per-request choice of a subset.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseSplitSpec, parseWeights, SplitError, type TrafficSplit } from '../../mesh-proxy/traffic/split.ts';
import { CompiledSplit } from '../../mesh-proxy/traffic/split-picker.ts';
import { Endpoint } from '../../mesh-proxy/discovery/endpoint.ts';

const split = (spec: unknown): TrafficSplit => ({ ...parseSplitSpec(spec), service: 's', version: 1, updatedAt: '' });

describe('split specs', () => {
  test('defaults: subsetKey version, no match rules', () => {
    assert.deepEqual(parseSplitSpec({ weights: { v1: 90, v2: 10 } }), { subsetKey: 'version', weights: { v1: 90, v2: 10 }, match: [] });
  });

  test('every problem is named at once, with a code', () => {
    assert.throws(
      () => parseSplitSpec({ weights: { v1: -1, 'bad name': 2 }, match: [{ header: { name: 'x' }, subset: 'v2' }], mirror: { subset: 'v2', percent: 120 }, extra: 1 }),
      (e: SplitError) => e.code === 'SPLIT_INVALID' && /unknown field "extra"/.test(e.message) && /weights.v1/.test(e.message) && /"bad name" is not a subset name/.test(e.message) && /match\[0\]/.test(e.message) && /mirror.percent/.test(e.message),
    );
    assert.throws(() => parseSplitSpec({ weights: { v1: 0 } }), /at least one weight must be above 0/);
    assert.throws(() => parseSplitSpec({ weights: {} }), /name at least one subset/);
    assert.throws(() => parseSplitSpec([1]), SplitError);
    assert.throws(() => parseSplitSpec({ weights: { v1: 1 }, match: [{ header: { name: 'a', value: 'b' }, cookie: { name: 'c', value: 'd' }, subset: 'v1' }] }), /exactly one of header or cookie/);
  });

  test('CLI weights', () => {
    assert.deepEqual(parseWeights(['v1=90', 'v2=10']), { v1: 90, v2: 10 });
    assert.throws(() => parseWeights(['v1:90']), /SUBSET=WEIGHT/);
  });
});

describe('choosing a subset', () => {
  test('weights: over N evenly spread draws the shares are exact to one draw', () => {
    const c = new CompiledSplit(split({ weights: { v1: 90, v2: 10, v3: 0 } }));
    const n = 20_000;
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const s = c.pick([], (i + 0.5) / n);
      counts[s] = (counts[s] ?? 0) + 1;
    }
    assert.deepEqual(counts, { v1: 18_000, v2: 2_000 });
  });

  test('match rules come first, in order; header names are case-insensitive, values exact; cookies by name', () => {
    const c = new CompiledSplit(
      split({
        weights: { v1: 100, v2: 0, v3: 0 },
        match: [
          { header: { name: 'X-Canary', value: 'always' }, subset: 'v2' },
          { cookie: { name: 'beta', value: '1' }, subset: 'v3' },
        ],
      }),
    );
    assert.equal(c.pick(['x-canary', 'always'], 0.5), 'v2');
    assert.equal(c.pick(['X-CANARY', 'always', 'cookie', 'beta=1'], 0.5), 'v2', 'the first rule wins');
    assert.equal(c.pick(['x-canary', 'Always'], 0.5), 'v1', 'values are exact');
    assert.equal(c.pick(['cookie', 'a=b; beta=1 ; c=d'], 0.5), 'v3');
    assert.equal(c.pick(['cookie', 'beta=10'], 0.5), 'v1');
  });

  test("a subset's endpoints by metadata, memoized per endpoint list", () => {
    const c = new CompiledSplit(split({ subsetKey: 'track', weights: { blue: 1, green: 1 } }));
    const ep = (id: string, track: string) => new Endpoint({ service: 's', id, address: '127.0.0.1', port: 1, dc: 'd', zone: '', metadata: { track } });
    const all = [ep('a', 'blue'), ep('b', 'green'), ep('c', 'blue')];
    const blue = c.endpointsOf(all, 'blue');
    assert.deepEqual(blue.map((e) => e.instance.id), ['a', 'c']);
    assert.equal(c.endpointsOf(all, 'blue'), blue, 'the same array for the same list');
    assert.deepEqual(c.endpointsOf(all, 'red'), []);
  });
});

describe('the split table', () => {
  test('a late event older than a removal does not bring the split back; a newer one does', async () => {
    const { SplitTable } = await import('../../mesh-proxy/traffic/split-table.ts');
    const { MemoryStore } = await import('../../mesh-proxy/store/memory/memory-store.ts');
    const { Metrics } = await import('../../mesh-proxy/observe/metrics.ts');
    const { createLogger } = await import('../../mesh-proxy/observe/log.ts');
    const store = new MemoryStore();
    const listeners: Array<(e: unknown) => void> = [];
    const realWatch = store.splits.watch.bind(store.splits);
    // Events are delivered by hand below, in an order a pub/sub channel could produce.
    store.splits.watch = (l) => {
      listeners.push(l as (e: unknown) => void);
      return realWatch(() => {});
    };
    const table = new SplitTable(store, 60_000, createLogger({ level: 'silent' }, {}), new Metrics('local'));
    await table.start();
    const v1 = await store.splits.put('s', parseSplitSpec({ weights: { a: 1 } }));
    const v2 = await store.splits.put('s', parseSplitSpec({ weights: { b: 1 } }));
    for (const l of listeners) l({ kind: 'put', split: v2 });
    for (const l of listeners) l({ kind: 'delete', service: 's' });
    for (const l of listeners) l({ kind: 'put', split: v1 }); // late and stale
    assert.equal(table.get('s'), undefined);
    const v3 = await store.splits.put('s', parseSplitSpec({ weights: { c: 1 } }));
    for (const l of listeners) l({ kind: 'put', split: v3 });
    assert.equal(table.get('s')?.split.version, 3);
    table.stop();
    await store.close();
  });
});
