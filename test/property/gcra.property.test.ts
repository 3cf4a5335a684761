// GCRA (store/gcra.ts, mirrored by the Redis script) as a state machine. GCRA is a token bucket of
// `max` tokens refilled at max/period: whatever the arrival times, between any two admissions d ms
// apart at most max + d·max/period requests were admitted (a full burst, then the steady rate), and a
// refused request changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { gcra } from '../../mesh-proxy/store/gcra.ts';
import type { RateLimitWindow } from '../../mesh-proxy/store/types.ts';

const windowArb = fc.record({ max: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 10, max: 5000 }) });

test('admissions never exceed a full burst plus the steady rate, for every window', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 1, maxLength: 3 }), fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 200 }), (windows: RateLimitWindow[], gaps) => {
      const tats = new Array<number>(windows.length).fill(0);
      const admitted: number[] = [];
      let now = 1_000_000;
      for (const gap of gaps) {
        now += gap;
        if (gcra(tats, windows, 1, now).allowed) admitted.push(now);
      }
      for (const w of windows) {
        for (let i = 0; i < admitted.length; i++) {
          for (let j = 0; j <= i; j++) {
            const bound = w.max + Math.floor(((admitted[i] - admitted[j]) * w.max) / w.periodMs + 1e-9);
            assert.ok(i - j + 1 <= bound, `${i - j + 1} admitted within ${admitted[i] - admitted[j]} ms; bound ${bound}`);
          }
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('a refused request leaves the state unchanged; remaining never goes below 0', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 1, maxLength: 3 }), fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 100 }), (windows: RateLimitWindow[], gaps) => {
      const tats = new Array<number>(windows.length).fill(0);
      let now = 5_000;
      for (const gap of gaps) {
        now += gap;
        const before = [...tats];
        const d = gcra(tats, windows, 1, now);
        assert.ok(d.remaining >= 0 && d.remaining <= d.limit);
        if (!d.allowed) {
          assert.deepEqual(tats, before);
          assert.ok(d.retryAfterMs > 0);
        }
      }
    }),
    { numRuns: 300 },
  );
});
