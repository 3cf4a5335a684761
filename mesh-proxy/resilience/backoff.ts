// Retry pacing. Full jitter spreads a burst of retries across the whole interval instead of
// synchronising them into waves ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

/**
 * Exponential backoff with full jitter: a whole number of ms in [0, min(maxMs, baseMs * 2^attempt)].
 * `attempt` is 0 for the first retry.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  // 2 ** 1024 is Infinity, which Math.min absorbs: no overflow guard needed.
  const ceiling = Math.floor(Math.max(0, Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt))));
  return Math.min(ceiling, Math.floor(random() * (ceiling + 1)));
}

/**
 * Parses `Retry-After` (RFC 9110 §10.2.3: delay-seconds or HTTP-date) into ms from now, capped at
 * `capMs`; undefined when absent or malformed. A date in the past means "now" (0).
 */
export function retryAfterMs(value: string | undefined, capMs: number, now: () => number = Date.now): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v.length === 0) return undefined;
  const first = v.charCodeAt(0);
  if (first >= 0x30 && first <= 0x39) {
    // delay-seconds = 1*DIGIT; no sign, no fraction. Scanned by hand: no regex on the response path.
    let seconds = 0;
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return undefined;
      seconds = seconds * 10 + (c - 0x30);
    }
    return Math.min(capMs, seconds * 1000);
  }
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; requiring a letter
  // keeps Date.parse from accepting things like "-1" as a year.
  if (!((first >= 0x41 && first <= 0x5a) || (first >= 0x61 && first <= 0x7a))) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(capMs, Math.max(0, at - now()));
}
