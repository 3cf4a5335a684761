// Load balancers: the Peak-EWMA latency estimate on a fake clock, power of two choices, the
// balancer factory, zone preference, and a simulated fleet with one slow endpoint.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../mesh-proxy/discovery/endpoint.ts';
import { PeakEwma } from '../../mesh-proxy/balancer/peak-ewma.ts';
import { P2CBalancer, type Balancer } from '../../mesh-proxy/balancer/p2c.ts';
import { createBalancer, EndpointStats, statsOf } from '../../mesh-proxy/balancer/create-balancer.ts';
import { preferZone } from '../../mesh-proxy/balancer/zone-filter.ts';

function endpoint(id: string, zone = 'z1'): Endpoint {
  return new Endpoint({ service: 'svc', id, address: '10.0.0.1', port: 8000 + Number(id.replace(/\D/g, '') || 0), dc: 'dc1', zone, metadata: {} });
}

function endpoints(n: number, prefix = 'e'): Endpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(`${prefix}${i}`));
}

/** mulberry32: a small seeded PRNG so picks are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns the given values in turn, then repeats the last. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)];
}

class FakeClock {
  t = 0;
  readonly now = (): number => this.t;
}

/** One request of `rttMs` on the fake clock. */
function sample(ewma: PeakEwma, clock: FakeClock, rttMs: number): void {
  const started = ewma.start();
  clock.t += rttMs;
  ewma.end(started);
}

describe('PeakEwma', () => {
  test('before any sample the estimate is the default, and it decays toward zero while unused', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({ defaultRttMs: 30, decayMs: 10_000 }, clock.now);
    assert.equal(ewma.rttMs, 30);
    assert.equal(ewma.load(), 30);
    assert.equal(ewma.pending, 0);
    // As in tower: so that a new endpoint is eventually tried even when its peers are faster.
    clock.t = 10_000;
    assert.ok(Math.abs(ewma.rttMs - 30 / Math.E) < 1e-9, String(ewma.rttMs));
  });

  test('defaults: tau 3 s, 30 ms', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma(undefined, clock.now);
    assert.equal(ewma.rttMs, 30);
    sample(ewma, clock, 100);
    clock.t += 3_000;
    assert.ok(Math.abs(ewma.rttMs - 100 / Math.E) < 1e-9);
  });

  test('a sample above the estimate replaces it at once', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({ defaultRttMs: 30 }, clock.now);
    sample(ewma, clock, 200);
    assert.equal(ewma.rttMs, 200);
    sample(ewma, clock, 500);
    assert.equal(ewma.rttMs, 500);
  });

  test('a sample below is blended by the time since the last update, so the estimate follows recent samples', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({ defaultRttMs: 30, decayMs: 10_000 }, clock.now);
    sample(ewma, clock, 100); // t = 100, estimate 100
    // 1. A 10 ms request that ends 10 s (one tau) later, with no read in between: w = 1/e.
    clock.t = 10_090;
    sample(ewma, clock, 10);
    const w = 1 / Math.E;
    assert.ok(Math.abs(ewma.rttMs - (100 * w + 10 * (1 - w))) < 1e-9, String(ewma.rttMs));
    // 2. A minute of 10 ms samples a second apart converges on 10 ms.
    for (let i = 0; i < 60; i++) {
      clock.t += 990;
      sample(ewma, clock, 10);
    }
    assert.ok(ewma.rttMs >= 10 && ewma.rttMs < 10.5, String(ewma.rttMs));
  });

  test('a sample right after an update barely moves the estimate down (the weight is time, not count)', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({ decayMs: 10_000 }, clock.now);
    sample(ewma, clock, 100);
    for (let i = 0; i < 100; i++) sample(ewma, clock, 1); // 100 samples within 100 ms
    assert.ok(ewma.rttMs > 98, String(ewma.rttMs));
  });

  test('pending counts requests in flight and never goes below zero', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({}, clock.now);
    const a = ewma.start();
    const b = ewma.start();
    assert.equal(ewma.pending, 2);
    ewma.end(a);
    assert.equal(ewma.pending, 1);
    ewma.end(b);
    assert.equal(ewma.pending, 0);
    ewma.end(b);
    assert.equal(ewma.pending, 0);
  });

  test('load is the estimate times (pending + 1)', () => {
    const clock = new FakeClock();
    const ewma = new PeakEwma({ defaultRttMs: 30 }, clock.now);
    ewma.start();
    ewma.start();
    assert.equal(ewma.load(), 90);
    sample(ewma, clock, 40); // a third request, 40 ms
    assert.equal(ewma.pending, 2);
    assert.equal(ewma.load(), 120);
  });

  test('a clock that steps back, a NaN or an infinite start time leave the estimate sane', () => {
    const clock = new FakeClock();
    clock.t = 1_000;
    const ewma = new PeakEwma({ defaultRttMs: 30, decayMs: 10_000 }, clock.now);
    sample(ewma, clock, 50);
    // 1. The clock steps back 500 ms: no amplification, and a negative rtt counts as 0.
    const started = ewma.start();
    clock.t -= 500;
    ewma.end(started);
    assert.equal(ewma.rttMs, 50);
    // 2. Garbage start times are dropped (pending still decrements).
    ewma.start();
    ewma.end(Number.NaN);
    ewma.start();
    ewma.end(Number.NEGATIVE_INFINITY);
    assert.equal(ewma.pending, 0);
    assert.equal(ewma.rttMs, 50);
    // 3. Once the clock is past its old high-water mark, decay resumes from there.
    clock.t = 1_050 + 10_000;
    assert.ok(Math.abs(ewma.rttMs - 50 / Math.E) < 1e-9, String(ewma.rttMs));
  });

  test('rejects options that would make the estimate NaN', () => {
    assert.throws(() => new PeakEwma({ decayMs: 0 }), RangeError);
    assert.throws(() => new PeakEwma({ decayMs: Number.NaN }), RangeError);
    assert.throws(() => new PeakEwma({ defaultRttMs: -1 }), RangeError);
    assert.throws(() => new PeakEwma({ defaultRttMs: Number.POSITIVE_INFINITY }), RangeError);
  });
});

describe('P2CBalancer', () => {
  test('no endpoints: undefined; one: it, without drawing', () => {
    let draws = 0;
    const p2c = new P2CBalancer(() => 0, () => (draws++, 0.5));
    assert.equal(p2c.pick([]), undefined);
    const [only] = endpoints(1);
    assert.equal(p2c.pick([only]), only);
    assert.equal(draws, 0);
  });

  test('compares two distinct endpoints, whatever the random source returns', () => {
    for (const n of [2, 3, 7]) {
      const eps = endpoints(n);
      const seen: Endpoint[] = [];
      const load = (ep: Endpoint): number => (seen.push(ep), 0);
      for (const random of [seeded(n), sequence(0), sequence(0.999999), sequence(1), sequence(Number.NaN), sequence(-1)]) {
        const p2c = new P2CBalancer(load, random);
        for (let k = 0; k < 200; k++) {
          seen.length = 0;
          const picked = p2c.pick(eps);
          assert.equal(seen.length, 2);
          assert.notEqual(seen[0], seen[1], `n=${n}: the same endpoint drawn twice`);
          assert.ok(picked === seen[0] || picked === seen[1]);
        }
      }
    }
  });

  test('every pair is drawn: with equal loads each endpoint gets about 1/n', () => {
    const eps = endpoints(4);
    const p2c = new P2CBalancer(() => 1, seeded(42));
    const counts = new Map<Endpoint, number>();
    for (let k = 0; k < 20_000; k++) {
      const ep = p2c.pick(eps)!;
      counts.set(ep, (counts.get(ep) ?? 0) + 1);
    }
    for (const ep of eps) assert.ok(Math.abs(counts.get(ep)! / 20_000 - 0.25) < 0.02, `${ep.instance.id}: ${counts.get(ep)}`);
  });

  test('the lower load wins; a tie keeps the first draw', () => {
    const [a, b, c] = endpoints(3);
    const loads = new Map([
      [a, 5],
      [b, 1],
      [c, 5],
    ]);
    const load = (ep: Endpoint): number => loads.get(ep)!;
    for (let seed = 0; seed < 50; seed++) assert.equal(new P2CBalancer(load, seeded(seed)).pick([a, b]), b);
    // Draws: i = floor(0.9 * 3) = 2 (c), then j from the other two = floor(0 * 2) = 0 (a): a tie.
    assert.equal(new P2CBalancer(load, sequence(0.9, 0)).pick([a, b, c]), c);
    assert.equal(new P2CBalancer(load, sequence(0, 0.9)).pick([a, b, c]), a);
  });

  test('the most loaded of several endpoints is never picked', () => {
    const eps = endpoints(5);
    const load = (ep: Endpoint): number => eps.indexOf(ep);
    const p2c = new P2CBalancer(load, seeded(7));
    for (let k = 0; k < 5_000; k++) assert.notEqual(p2c.pick(eps), eps[4]);
  });
});

describe('createBalancer', () => {
  test('round-robin cycles through the endpoints in order', () => {
    const eps = endpoints(3);
    const b = createBalancer('round-robin');
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.pick(eps)),
      [eps[0], eps[1], eps[2], eps[0], eps[1], eps[2]],
    );
  });

  test('least-request avoids the endpoint with more requests in flight', () => {
    const [a, b] = endpoints(2, 'lr');
    const started = [statsOf(a).ewma.start(), statsOf(a).ewma.start()];
    const bal = createBalancer('least-request', seeded(1));
    for (let k = 0; k < 100; k++) assert.equal(bal.pick([a, b]), b);
    for (const s of started) statsOf(a).ewma.end(s);
    assert.equal(statsOf(a).ewma.pending, 0);
  });

  test('p2c-ewma avoids the endpoint with the higher rtt × (pending + 1)', () => {
    const [a, b] = endpoints(2, 'pe');
    statsOf(a).ewma.start(); // 30 ms default × 2 against 30 ms × 1
    const bal = createBalancer('p2c-ewma', seeded(2));
    for (let k = 0; k < 100; k++) assert.equal(bal.pick([a, b]), b);
    assert.equal(bal.pick([]), undefined);
    assert.equal(bal.pick([a]), a);
  });

  test('statsOf creates per-endpoint statistics once, keyed by the Endpoint object', () => {
    const a = endpoint('s1');
    const a2 = endpoint('s1'); // the same instance re-announced with a change: a new Endpoint
    assert.ok(statsOf(a) instanceof EndpointStats);
    assert.equal(statsOf(a), statsOf(a));
    assert.notEqual(statsOf(a), statsOf(a2));
    const rtt = new EndpointStats({ defaultRttMs: 5 }).ewma.rttMs; // on the real clock: decaying already
    assert.ok(rtt > 4.99 && rtt <= 5, String(rtt));
  });

  test('an unknown kind is a TypeError', () => {
    assert.throws(() => createBalancer('random' as never), TypeError);
  });
});

describe('preferZone', () => {
  const eps = [endpoint('a1', 'a'), endpoint('a2', 'a'), endpoint('a3', 'a'), endpoint('b1', 'b'), endpoint('b2', 'b')];
  Object.freeze(eps);

  test('enough local endpoints: only those, the same array on every call, frozen', () => {
    const local = preferZone(eps, 'a', 2, 0.5);
    assert.deepEqual(
      local.map((e) => e.instance.id),
      ['a1', 'a2', 'a3'],
    );
    assert.equal(preferZone(eps, 'a', 2, 0.5), local);
    assert.ok(Object.isFrozen(local));
  });

  test('too few local endpoints, in number or share: every candidate', () => {
    assert.equal(preferZone(eps, 'a', 4, 0.5), eps);
    assert.equal(preferZone(eps, 'b', 2, 0.5), eps); // 2 of 5 < 50 %
    assert.equal(preferZone(eps, 'b', 2, 0.4).length, 2); // 2 of 5 = 40 %
  });

  test("zone '' (no preference), an unknown zone, or an all-local set: the candidates themselves", () => {
    assert.equal(preferZone(eps, '', 0, 0), eps);
    assert.equal(preferZone(eps, 'c', 0, 0), eps); // never an empty set
    const allA = eps.slice(0, 3);
    assert.equal(preferZone(allA, 'a', 1, 0.5), allA);
    assert.equal(preferZone([], 'a', 0, 0).length, 0);
  });

  test('the cache follows the snapshot and the parameters', () => {
    const first = preferZone(eps, 'a', 2, 0.5);
    // 1. Other parameters on the same snapshot: recomputed, not the cached answer.
    assert.equal(preferZone(eps, 'a', 4, 0.5), eps);
    assert.equal(preferZone(eps, 'b', 1, 0.4).length, 2);
    // 2. A new snapshot (discovery swapped the array) gets its own subset.
    const next = [...eps, endpoint('a4', 'a')];
    const second = preferZone(next, 'a', 2, 0.5);
    assert.notEqual(second, first);
    assert.equal(second.length, 4);
  });
});

// A closed-loop fleet on a simulated clock: `concurrency` requests are always in flight, each one
// issued when another ends. Latency per endpoint is fixed, so each endpoint's requests end in the
// order they started and one FIFO per endpoint is an exact event queue. Simultaneous ends are taken
// in the order the requests were issued, so no endpoint is favoured by its position.
interface SimResult {
  shares: number[];
  simulatedMs: number;
}

function simulate(balancer: Balancer, eps: readonly Endpoint[], latencyMs: readonly number[], clock: FakeClock, track: (ep: Endpoint) => PeakEwma | undefined, total: number, concurrency: number): SimResult {
  const queues = eps.map(() => [] as Array<{ endAt: number; seq: number; startedAt: number }>);
  const heads = eps.map(() => 0);
  const counts = eps.map(() => 0);
  let issued = 0;
  const issue = (): void => {
    const ep = balancer.pick(eps);
    assert.ok(ep !== undefined);
    const i = eps.indexOf(ep);
    counts[i]++;
    issued++;
    const startedAt = track(ep)?.start() ?? clock.t;
    queues[i].push({ endAt: clock.t + latencyMs[i], seq: issued, startedAt });
  };
  for (let k = 0; k < concurrency; k++) issue();
  for (;;) {
    // 1. The earliest end among the endpoints' queue heads.
    let next = -1;
    for (let i = 0; i < eps.length; i++) {
      if (heads[i] >= queues[i].length) continue;
      const a = queues[i][heads[i]];
      const b = next === -1 ? undefined : queues[next][heads[next]];
      if (b === undefined || a.endAt < b.endAt || (a.endAt === b.endAt && a.seq < b.seq)) next = i;
    }
    if (next === -1) break;
    // 2. Advance the clock to it and record the response.
    const done = queues[next][heads[next]++];
    clock.t = done.endAt;
    track(eps[next])?.end(done.startedAt);
    // 3. Keep the loop closed until the budget is spent.
    if (issued < total) issue();
  }
  const sum = counts.reduce((a, b) => a + b, 0);
  assert.equal(sum, total);
  return { shares: counts.map((c) => c / sum), simulatedMs: clock.t };
}

describe('simulation: two 1 ms endpoints and one 51 ms', () => {
  const LATENCY = [1, 1, 51];
  const TOTAL = 30_000;
  const fmt = (s: number[]): string => s.map((x) => x.toFixed(4)).join(' / ');

  for (const concurrency of [8, 64]) {
    test(`p2c-ewma keeps the slow endpoint's share well under 1/3 (${concurrency} in flight)`, (t) => {
      const clock = new FakeClock();
      const eps = endpoints(3, `sim${concurrency}-`);
      // The same algorithm as createBalancer('p2c-ewma'), with estimates on the simulated clock.
      const ewmas = new Map(eps.map((ep) => [ep, new PeakEwma({}, clock.now)]));
      const balancer = new P2CBalancer((ep) => ewmas.get(ep)!.load(), seeded(concurrency));
      const { shares, simulatedMs } = simulate(balancer, eps, LATENCY, clock, (ep) => ewmas.get(ep), TOTAL, concurrency);
      t.diagnostic(`p2c-ewma, ${concurrency} in flight: shares fast/fast/slow = ${fmt(shares)} over ${simulatedMs} simulated ms`);
      assert.ok(shares[2] < 0.15, `slow share ${shares[2]}`);
      for (const ep of eps) assert.equal(ewmas.get(ep)!.pending, 0);
    });

    test(`least-request also shifts load off the slow endpoint (${concurrency} in flight)`, (t) => {
      const clock = new FakeClock();
      const eps = endpoints(3, `lr${concurrency}-`);
      // Pending counts don't depend on the clock, so the real factory and statsOf serve here.
      const { shares } = simulate(createBalancer('least-request', seeded(concurrency)), eps, LATENCY, clock, (ep) => statsOf(ep).ewma, TOTAL, concurrency);
      t.diagnostic(`least-request, ${concurrency} in flight: shares fast/fast/slow = ${fmt(shares)}`);
      assert.ok(shares[2] < 0.15, `slow share ${shares[2]}`);
    });

    test(`round-robin gives the slow endpoint about 1/3 (${concurrency} in flight)`, (t) => {
      const clock = new FakeClock();
      const eps = endpoints(3, `rr${concurrency}-`);
      const { shares, simulatedMs } = simulate(createBalancer('round-robin'), eps, LATENCY, clock, () => undefined, TOTAL, concurrency);
      t.diagnostic(`round-robin, ${concurrency} in flight: shares fast/fast/slow = ${fmt(shares)} over ${simulatedMs} simulated ms`);
      assert.ok(Math.abs(shares[2] - 1 / 3) < 0.01, `slow share ${shares[2]}`);
    });
  }
});
