// Properties of the balancers: a pick is always one of the candidates, P2C never takes the strictly
// heavier of two, and the Peak-EWMA estimate stays inside the range its inputs allow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Endpoint } from '../../mesh-proxy/discovery/endpoint.ts';
import { P2CBalancer, type Balancer } from '../../mesh-proxy/balancer/p2c.ts';
import { PeakEwma } from '../../mesh-proxy/balancer/peak-ewma.ts';
import { createBalancer, type BalancerKind } from '../../mesh-proxy/balancer/create-balancer.ts';

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => new Endpoint({ service: 'svc', id: `e${i}`, address: '10.0.0.1', port: 9000 + i, dc: 'dc1', zone: 'z', metadata: {} }));
}

/** A random source that replays `values` in a loop, edge values (0, 1, NaN, out of range) included. */
function replay(values: readonly number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

const randomValues = fc.array(
  fc.oneof(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(0, 0.999999999, 1, -0.25, 1.5, Number.NaN)),
  { minLength: 1, maxLength: 16 },
);
const loadValue = fc.oneof(fc.double(), fc.integer({ min: 0, max: 5 }));
const KINDS: readonly BalancerKind[] = ['p2c-ewma', 'round-robin', 'least-request'];

test('pick returns a member of the input, or undefined exactly when it is empty', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 12 }),
      fc.array(loadValue, { minLength: 12, maxLength: 12 }),
      randomValues,
      fc.constantFrom('p2c', ...KINDS),
      fc.integer({ min: 1, max: 20 }),
      (n, loads, rnd, kind, picks) => {
        const eps = endpoints(n);
        const balancer: Balancer =
          kind === 'p2c' ? new P2CBalancer((ep) => loads[eps.indexOf(ep)], replay(rnd)) : createBalancer(kind, replay(rnd));
        for (let k = 0; k < picks; k++) {
          const picked = balancer.pick(eps);
          if (n === 0) assert.equal(picked, undefined);
          else assert.ok(picked !== undefined && eps.includes(picked), `${kind}: picked ${String(picked?.instance.id)} of ${n}`);
        }
      },
    ),
  );
});

test('P2C over two endpoints never picks the one with the strictly greater load', () => {
  fc.assert(
    fc.property(loadValue, loadValue, randomValues, (la, lb, rnd) => {
      const [a, b] = endpoints(2);
      const p2c = new P2CBalancer((ep) => (ep === a ? la : lb), replay(rnd));
      for (let k = 0; k < 8; k++) {
        const picked = p2c.pick([a, b]);
        if (la > lb) assert.equal(picked, b, `loads ${la} / ${lb}`);
        if (lb > la) assert.equal(picked, a, `loads ${la} / ${lb}`);
      }
    }),
  );
});

test('P2C over any number of endpoints never picks a unique strictly-heaviest one', () => {
  fc.assert(
    fc.property(fc.array(loadValue, { minLength: 2, maxLength: 10 }), randomValues, (loads, rnd) => {
      const eps = endpoints(loads.length);
      const p2c = new P2CBalancer((ep) => loads[eps.indexOf(ep)], replay(rnd));
      const heaviest = loads.findIndex((l, i) => loads.every((m, j) => j === i || l > m));
      for (let k = 0; k < 8; k++) if (heaviest !== -1) assert.notEqual(p2c.pick(eps), eps[heaviest]);
    }),
  );
});

// Reading the estimate decays it toward zero (tower's load()), so between samples it may fall below
// the smallest sample; what holds at every instant is the upper bound, and at every sample the full
// range [min sample, max(default, max sample)] (the sample itself is a floor: peak or blend).
const ewmaStep = fc.record({
  gapMs: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100_000 })),
  rttMs: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.double({ min: 0, max: 1e6, noNaN: true })),
  reads: fc.integer({ min: 0, max: 3 }),
});

test('the PeakEwma estimate stays within [min sample, max(default, max sample)]', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 1_000, noNaN: true }),
      fc.double({ min: 1, max: 60_000, noNaN: true }),
      fc.array(ewmaStep, { maxLength: 40 }),
      (defaultRttMs, decayMs, steps) => {
        let t = 0;
        const ewma = new PeakEwma({ defaultRttMs, decayMs }, () => t);
        let min = Infinity;
        let max = defaultRttMs;
        let last = ewma.rttMs;
        assert.equal(last, defaultRttMs);
        for (const { gapMs, rttMs, reads } of steps) {
          // 1. Idle time with reads (picks) in it: never rises, never leaves [0, max].
          for (let r = 0; r < reads; r++) {
            t += gapMs / (reads + 1);
            const v = ewma.rttMs;
            assert.ok(v >= 0 && v <= last && v <= max, `read ${v} after ${last}, max ${max}`);
            last = v;
          }
          t += gapMs / (reads + 1);
          // 2. One request of rttMs: right after it, the estimate is inside the sample range.
          const started = ewma.start();
          t += rttMs;
          ewma.end(started);
          // The sample is what the clock measured: t + rttMs - t need not equal rttMs in floats.
          const sample = t - started;
          min = Math.min(min, sample);
          max = Math.max(max, sample);
          const v = ewma.rttMs;
          assert.ok(v >= min && v >= sample && v <= max, `estimate ${v} outside [${min}, ${max}] after a ${sample} ms sample`);
          assert.equal(ewma.pending, 0);
          assert.equal(ewma.load(), v);
          last = v;
        }
      },
    ),
  );
});
