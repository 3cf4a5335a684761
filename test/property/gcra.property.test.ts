// Properties of the GCRA core (store/gcra.ts, mirrored by the Redis script). GCRA is a rate with a
// burst: "max per period" sustains max/period and lets up to max through at once. So the bound
// that holds for every interval of length L is max + L·max/period; inside one period that is up
// to 2·max − 1 (a full burst, then what replenishes during the period), never "max per any
// sliding period" — the last test shows the case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { gcra } from '../../mesh-proxy/store/gcra.ts';
import type { RateLimitWindow } from '../../mesh-proxy/store/types.ts';

const windowArb = fc.record({ max: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1, max: 5_000 }) });
// Arrival gaps in ms: many zeros (bursts), some small, some long pauses.
const gaps = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 6_000 })), { minLength: 1, maxLength: 200 });

function run(windows: readonly RateLimitWindow[], arrivals: readonly number[]) {
  const tats = new Array<number>(2 * windows.length).fill(0);
  let now = 1_700_000_000_000;
  const allowedAt: number[] = [];
  const decisions = [];
  for (const gap of arrivals) {
    now += gap;
    const d = gcra(tats, windows, 1, now);
    decisions.push({ now, d });
    if (d.allowed) allowedAt.push(now);
  }
  return { allowedAt, decisions };
}

test('single window: a burst at one instant passes at most max; any interval of length L passes at most max + L·max/period', () => {
  fc.assert(
    fc.property(windowArb, gaps, (w, arrivals) => {
      const { allowedAt } = run([w], arrivals);
      // Sliding over allowed arrivals: from each i, count those within [t_i, t_i + L] for L in {0, period/2, period}.
      for (const L of [0, Math.floor(w.periodMs / 2), w.periodMs]) {
        const bound = w.max + (L * w.max) / w.periodMs;
        let j = 0;
        for (let i = 0; i < allowedAt.length; i++) {
          if (j < i) j = i;
          while (j + 1 < allowedAt.length && allowedAt[j + 1] - allowedAt[i] <= L) j++;
          const count = j - i + 1;
          if (count > bound + 1e-9) return false;
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

test('single window: a fresh caller gets exactly max at once, then nothing until a unit replenishes', () => {
  fc.assert(
    fc.property(windowArb, fc.integer({ min: 0, max: 40 }), (w, extra) => {
      const { allowedAt } = run([w], new Array<number>(w.max + extra).fill(0));
      return allowedAt.length === w.max;
    }),
  );
});

test('multi-window: a refused request consumes nothing (every TAT unchanged); an allowed one advances every window', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 1, maxLength: 4 }), gaps, (windows, arrivals) => {
      const tats = new Array<number>(2 * windows.length).fill(0);
      let now = 1_700_000_000_000;
      for (const gap of arrivals) {
        now += gap;
        const before = [...tats];
        const d = gcra(tats, windows, 1, now);
        if (!d.allowed) {
          if (tats.some((t, i) => t !== before[i])) return false;
        } else {
          // Every window's TAT (ms + fraction) moved past max(before, now).
          for (let i = 0; i < windows.length; i++) {
            const was = Math.max(before[2 * i] + before[2 * i + 1], now);
            if (!(tats[2 * i] + tats[2 * i + 1] > was)) return false;
            if (!(tats[2 * i + 1] >= 0 && tats[2 * i + 1] < 1) || !Number.isInteger(tats[2 * i])) return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

test('multi-window: the count passed never exceeds the tightest burst at one instant, nor any window\'s L-bound', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 2, maxLength: 4 }), gaps, (windows, arrivals) => {
      const { allowedAt } = run(windows, arrivals);
      for (const w of windows) {
        const L = w.periodMs;
        let j = 0;
        for (let i = 0; i < allowedAt.length; i++) {
          if (j < i) j = i;
          while (j + 1 < allowedAt.length && allowedAt[j + 1] - allowedAt[i] <= L) j++;
          if (j - i + 1 > 2 * w.max) return false;
        }
      }
      const burst = run(windows, new Array<number>(50).fill(0)).allowedAt.length;
      return burst === Math.min(50, ...windows.map((w) => w.max));
    }),
    { numRuns: 200 },
  );
});

test('decisions are well-formed: remaining in [0, limit], retryAfterMs > 0 exactly when refused, the reported window is one of them', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 1, maxLength: 4 }), gaps, (windows, arrivals) => {
      for (const { d } of run(windows, arrivals).decisions) {
        if (d.remaining < 0 || d.remaining > d.limit || !Number.isInteger(d.remaining)) return false;
        if (d.window < 0 || d.window >= windows.length || d.limit !== windows[d.window].max) return false;
        if (d.allowed ? d.retryAfterMs !== 0 : d.retryAfterMs <= 0) return false;
        if (!d.allowed && d.remaining !== 0) return false;
        if (d.resetMs < 0 || d.resetMs > Math.max(...windows.map((w) => w.periodMs))) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

test('a retry after retryAfterMs passes (Retry-After is never too short)', () => {
  fc.assert(
    fc.property(fc.array(windowArb, { minLength: 1, maxLength: 4 }), gaps, (windows, arrivals) => {
      const tats = new Array<number>(2 * windows.length).fill(0);
      let now = 1_700_000_000_000;
      for (const gap of arrivals) {
        now += gap;
        const d = gcra(tats, windows, 1, now);
        if (!d.allowed) {
          const probe = [...tats];
          if (!gcra(probe, windows, 1, now + d.retryAfterMs).allowed) return false;
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

test('GCRA is not a sliding-window counter: within one period up to 2·max − 1 can pass (documented)', () => {
  const w: RateLimitWindow = { max: 10, periodMs: 1000 };
  const tats = [0, 0];
  let passed = 0;
  const t0 = 1_700_000_000_000;
  for (let i = 0; i < 10; i++) if (gcra(tats, [w], 1, t0).allowed) passed++;
  // One more unit every 100 ms for the rest of the same second.
  for (let ms = 100; ms < 1000; ms += 100) if (gcra(tats, [w], 1, t0 + ms).allowed) passed++;
  assert.equal(passed, 19);
});
