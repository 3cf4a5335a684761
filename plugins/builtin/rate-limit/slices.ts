// Slices of a busy caller's global limit, spent locally. A store check per request puts a Redis
// round trip on every request (measured: the rate limit alone cost the edge 16–26% of its
// throughput with Redis on the same machine, the core idle while it waited). A gateway that sees a
// caller often instead takes several units in one check and spends them itself for at most `lease`
// ms; what is left when the lease ends is dropped.
//
// Units are consumed in the store before they are spent, so the gateways together never pass more
// than the store granted. What a slice costs: a unit can be spent up to `lease` ms after it was
// counted (within one period, at most max × lease / period more than per-request checks would pass),
// and units one gateway holds cannot be spent by another (under-admission near the limit).
//
// A slice is never larger than what the tightest window allows in `lease`: limits below 2 per lease
// (10/s with a 50 ms lease, any hourly limit under 144,000) are never sliced — every request is
// checked. A caller's slice starts at one unit and doubles while slices run dry before their lease
// ends, shrinking to what was spent when one expires with units left. Requests that arrive while a
// caller's check is in flight wait for it and share its units.
//
// A refusal is remembered for up to one lease (or its retry time, if sooner): no unit can pass
// before the retry time (a GCRA window's theoretical arrival time only moves forward), so a flood
// of refused requests costs a round trip per lease, not per request. Not longer: a key reset in
// Redis, or a Redis that restarted empty, takes effect within a lease.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../../../mesh-proxy/store/types.ts';

/** Callers tracked at once; beyond this, new callers get per-request checks until the sweep. */
const MAX_TRACKED = 10_000;
const SWEEP_EVERY_MS = 1000;

interface Waiter {
  resolve(d: RateLimitDecision): void;
  reject(err: unknown): void;
}

interface Slice {
  /** Units left to spend, until `until`. */
  units: number;
  /** The current slice's units (sizing) and the store's verdict on it (headers). */
  granted: number;
  verdict: RateLimitDecision | undefined;
  /** When the verdict came: the slice's units, or a refusal, hold until `until`. */
  at: number;
  until: number;
  /** Units the next check asks for. */
  size: number;
  /** Requests waiting for the check in flight (undefined: none in flight). */
  waiters: Waiter[] | undefined;
}

export class Slices {
  readonly #store: RateLimitStore;
  readonly #windows: readonly RateLimitWindow[];
  readonly #leaseMs: number;
  readonly #cap: number;
  readonly #checked: () => void;
  readonly #slices = new Map<string, Slice>();
  #nextSweep = 0;

  /** `checked` counts store round trips (a metric). */
  constructor(store: RateLimitStore, windows: readonly RateLimitWindow[], leaseMs: number, checked: () => void) {
    this.#store = store;
    this.#windows = windows;
    this.#leaseMs = leaseMs;
    this.#cap = sliceCap(windows, leaseMs);
    this.#checked = checked;
  }

  /** Largest slice these limits allow (below 2: every request is checked). */
  get cap(): number {
    return this.#cap;
  }

  /** The verdict for one request: now when this gateway holds units or a refusal, else after a check. Rejects when the store cannot answer. */
  take(bucket: string, now: number): RateLimitDecision | Promise<RateLimitDecision> {
    if (now >= this.#nextSweep) this.#sweep(now);
    let s = this.#slices.get(bucket);
    if (s !== undefined && now < s.until) {
      const v = s.verdict!;
      if (!v.allowed) return refusal(v, s, now);
      if (s.units > 0) {
        s.units--;
        return spent(v, s, now);
      }
    }
    if (this.#cap < 2) return this.#checkOne(bucket);
    if (s === undefined) {
      if (this.#slices.size >= MAX_TRACKED) return this.#checkOne(bucket);
      s = { units: 0, granted: 0, verdict: undefined, at: 0, until: 0, size: 1, waiters: undefined };
      this.#slices.set(bucket, s);
    }
    const waiters = s.waiters;
    if (waiters !== undefined) return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    // Size the next slice on how the last one went: ran dry before its lease ended → double;
    // expired with units left → what was spent.
    if (s.granted > 0) {
      if (s.units === 0 && now < s.until) s.size = Math.min(this.#cap, s.size * 2);
      else if (s.units > 0) s.size = Math.max(1, s.granted - s.units);
    }
    s.units = 0;
    s.granted = 0;
    s.until = 0;
    const slice = s;
    const first = new Promise<RateLimitDecision>((resolve, reject) => {
      slice.waiters = [{ resolve, reject }];
    });
    this.#check(bucket, slice, slice.size);
    return first;
  }

  /** A per-request check (limits too tight to slice, or too many callers tracked); a refusal is remembered. */
  async #checkOne(bucket: string): Promise<RateLimitDecision> {
    this.#checked();
    const d = await this.#store.consume(bucket, this.#windows, 1);
    if (!d.allowed) {
      const now = Date.now();
      const s = this.#slices.get(bucket);
      if (s !== undefined && s.waiters === undefined) {
        s.verdict = d;
        s.at = now;
        s.until = now + Math.min(d.retryAfterMs, this.#leaseMs);
        s.units = 0;
      } else if (s === undefined && this.#slices.size < MAX_TRACKED) {
        this.#slices.set(bucket, { units: 0, granted: 0, verdict: d, at: now, until: now + Math.min(d.retryAfterMs, this.#leaseMs), size: 1, waiters: undefined });
      }
    }
    return d;
  }

  #check(bucket: string, s: Slice, want: number): void {
    this.#checked();
    this.#store.consume(bucket, this.#windows, want).then(
      (d) => this.#answered(bucket, s, d),
      (err: unknown) => {
        const waiters = s.waiters!;
        s.waiters = undefined;
        for (const w of waiters) w.reject(err);
      },
    );
  }

  #answered(bucket: string, s: Slice, d: RateLimitDecision): void {
    const waiters = s.waiters!;
    const now = Date.now();
    s.verdict = d;
    s.at = now;
    if (!d.allowed) {
      s.waiters = undefined;
      s.units = 0;
      s.until = now + Math.min(d.retryAfterMs, this.#leaseMs);
      for (const w of waiters) w.resolve(d);
      return;
    }
    s.granted = d.granted;
    s.units = d.granted;
    s.until = now + this.#leaseMs;
    let i = 0;
    for (; i < waiters.length && s.units > 0; i++) {
      s.units--;
      waiters[i].resolve(spent(d, s, now));
    }
    if (i === waiters.length) {
      s.waiters = undefined;
      return;
    }
    // More requests waited than the slice held: they ask again, for at least as many units (the
    // store refuses them with the exact retry time when the limit has no room left).
    const rest = waiters.slice(i);
    s.waiters = rest;
    s.size = Math.min(this.#cap, Math.max(s.size * 2, rest.length));
    s.granted = 0;
    this.#check(bucket, s, Math.min(this.#cap, Math.max(s.size, rest.length)));
  }

  #sweep(now: number): void {
    this.#nextSweep = now + SWEEP_EVERY_MS;
    // A caller idle for a second past its lease starts afresh at one unit.
    for (const [k, s] of this.#slices) if (s.waiters === undefined && s.until + SWEEP_EVERY_MS <= now) this.#slices.delete(k);
  }

  get tracked(): number {
    return this.#slices.size;
  }
}

/** Largest slice: what the tightest window allows in one lease. */
export function sliceCap(windows: readonly RateLimitWindow[], leaseMs: number): number {
  let cap = Infinity;
  for (const w of windows) cap = Math.min(cap, Math.floor((w.max * leaseMs) / w.periodMs));
  return cap;
}

/** One unit spent from a slice: the store's view at the check, plus the units still held here. */
function spent(v: RateLimitDecision, s: Slice, now: number): RateLimitDecision {
  return { allowed: true, granted: 1, window: v.window, limit: v.limit, remaining: v.remaining + s.units, resetMs: Math.max(0, v.resetMs - (now - s.at)), retryAfterMs: 0 };
}

/** A remembered refusal, its waits counted from now. */
function refusal(v: RateLimitDecision, s: Slice, now: number): RateLimitDecision {
  return { allowed: false, granted: 0, window: v.window, limit: v.limit, remaining: 0, resetMs: Math.max(0, v.resetMs - (now - s.at)), retryAfterMs: Math.max(1, v.retryAfterMs - (now - s.at)) };
}
