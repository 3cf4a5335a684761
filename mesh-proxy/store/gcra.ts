// GCRA over several windows at once, on plain numbers so the memory store and the Redis script
// (which mirrors these lines in Lua) agree. `tats` holds each window's theoretical arrival time in
// ms and is advanced in place only when the request passes every window.
import type { RateLimitDecision, RateLimitWindow } from './types.ts';

export function gcra(tats: number[], windows: readonly RateLimitWindow[], cost: number, now: number): RateLimitDecision {
  let allowed = true;
  let retryAfterMs = 0;
  // The window reported in headers: the one refusing (longest wait), else the one with least room.
  let report = 0;
  let reportRoom = Infinity;
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i];
    const t = w.periodMs / w.max;
    const next = Math.max(tats[i], now) + cost * t;
    const over = next - now - w.periodMs;
    if (over > 0) {
      if (allowed || over > retryAfterMs) report = i;
      allowed = false;
      retryAfterMs = Math.max(retryAfterMs, over);
    } else if (allowed) {
      const room = (w.periodMs - (next - now)) / w.periodMs;
      if (room < reportRoom) {
        reportRoom = room;
        report = i;
      }
    }
  }
  if (allowed) for (let i = 0; i < windows.length; i++) tats[i] = Math.max(tats[i], now) + (cost * windows[i].periodMs) / windows[i].max;
  const w = windows[report];
  const t = w.periodMs / w.max;
  const tat = Math.max(tats[report], now);
  const used = tat - now; // time the window needs to replenish fully
  return {
    allowed,
    window: report,
    limit: w.max,
    remaining: Math.max(0, Math.floor((w.periodMs - used) / t + 1e-9)),
    resetMs: Math.ceil(used),
    retryAfterMs: Math.ceil(retryAfterMs),
  };
}
