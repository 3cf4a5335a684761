// GCRA over several windows at once, on plain numbers so the memory store and the Redis script
// (which mirrors these lines in Lua) agree. Each window's theoretical arrival time (TAT) is kept as
// two numbers, whole ms and the fraction ([2i] = ms, [2i+1] = fraction), and the arithmetic is done
// relative to now: a single float TAT near today's epoch has a 0.24 µs grain, and adding a
// non-dyadic period/max to it max times drifted enough (≈ max × 0.12 µs) to refuse the max-th
// request of a burst (5 per 458 ms let 4 through). `tats` is advanced in place only when the
// request passes every window.
//
// `gcra` is all or nothing: `cost` units pass when every window has room for them. `gcraUpTo`
// grants as many of `want` units as every window has room for (a gateway taking a slice of a busy
// caller's limit ahead: plugins/builtin/rate-limit/slices.ts), after giving back `returned` units
// an earlier slice took and did not spend.
import type { RateLimitDecision, RateLimitWindow } from './types.ts';

/** Float slack in the comparison: a pass up to period × 1e-9 early (≤ 0.1 ms a day) is accepted. */
const SLACK = 1e-9;

export function gcra(tats: number[], windows: readonly RateLimitWindow[], cost: number, now: number): RateLimitDecision {
  let allowed = true;
  let retryAfterMs = 0;
  // The window reported in headers: the one refusing (longest wait), else the one with least room.
  let report = 0;
  let reportRoom = Infinity;
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i];
    const used = Math.max(0, tats[2 * i] - now + tats[2 * i + 1]);
    const over = used + (cost * w.periodMs) / w.max - w.periodMs;
    if (over > w.periodMs * SLACK) {
      if (allowed || over > retryAfterMs) report = i;
      allowed = false;
      retryAfterMs = Math.max(retryAfterMs, over);
    } else if (allowed) {
      const r = -over / w.periodMs;
      if (r < reportRoom) {
        reportRoom = r;
        report = i;
      }
    }
  }
  const w = windows[report];
  // Time the reported window needs to replenish fully.
  let used = Math.max(0, tats[2 * report] - now + tats[2 * report + 1]);
  if (allowed) {
    for (let i = 0; i < windows.length; i++) {
      const next = Math.max(0, tats[2 * i] - now + tats[2 * i + 1]) + (cost * windows[i].periodMs) / windows[i].max;
      const whole = Math.floor(next);
      tats[2 * i] = now + whole;
      tats[2 * i + 1] = next - whole;
      if (i === report) used = next;
    }
  }
  return {
    allowed,
    granted: allowed ? cost : 0,
    window: report,
    limit: w.max,
    remaining: Math.max(0, Math.floor(((w.periodMs - used) * w.max) / w.periodMs + SLACK * w.max)),
    resetMs: Math.ceil(used),
    retryAfterMs: Math.ceil(retryAfterMs),
  };
}

/** Up to `want` units (0 granted: refused, with the wait for one unit), after `returned` units are given back. */
export function gcraUpTo(tats: number[], windows: readonly RateLimitWindow[], want: number, returned: number, now: number): RateLimitDecision {
  if (returned > 0) {
    for (let i = 0; i < windows.length; i++) {
      const used = Math.max(0, tats[2 * i] - now + tats[2 * i + 1]);
      const next = Math.max(0, used - (returned * windows[i].periodMs) / windows[i].max);
      const whole = Math.floor(next);
      tats[2 * i] = now + whole;
      tats[2 * i + 1] = next - whole;
    }
  }
  let room = want;
  for (let i = 0; i < windows.length && room > 0; i++) {
    const w = windows[i];
    const used = Math.max(0, tats[2 * i] - now + tats[2 * i + 1]);
    room = Math.min(room, Math.floor(((w.periodMs - used) * w.max) / w.periodMs + SLACK * w.max));
  }
  return gcra(tats, windows, room > 0 ? room : 1, now);
}

/** When every window of `tats` is fully replenished (ms). */
export function idleAt(tats: readonly number[]): number {
  let at = 0;
  for (let i = 0; i < tats.length; i += 2) at = Math.max(at, tats[i] + Math.ceil(tats[i + 1]));
  return at;
}
