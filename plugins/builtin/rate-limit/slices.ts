// Slices of a busy caller's global limit, spent locally. A store check per request puts a Redis
// round trip on every request (measured: the rate limit alone cost the edge 16–26% of its
// throughput with Redis on the same machine, the core idle while it waited). A gateway that sees a
// caller often instead takes several units in one check and spends them itself for at most `lease`
// ms from when it sent the check; units left when the lease ends are given back with the caller's
// next check (no extra round trip), so they cost the caller nothing once it comes back.
//
// Units are consumed in the store before they are spent, so the gateways together never pass more
// than the store granted. What a slice costs: a unit can be spent up to `lease` ms after it was
// counted (within one period, at most max × lease / period more than per-request checks would pass),
// and units one gateway holds cannot be spent by another until they are given back (near the limit,
// a caller spread over gateways can be refused while another gateway holds units).
//
// A slice is never larger than what the tightest window allows in `lease`: limits below 2 per lease
// (below 40/s with a 50 ms lease, any hourly limit under 144,000) are never sliced — every request
// is checked. A caller's slice starts at one unit and doubles while slices run dry before their
// lease ends, shrinking to what was spent when one expires with units left. Requests that arrive
// while a caller's check is in flight wait for it and share its units; when more wait than it
// brought, they ask again together.
//
// A refusal is remembered for up to one lease (or its retry time, if sooner): no unit can pass
// before the retry time (a GCRA window's theoretical arrival time only moves forward), so a flood
// of refused requests costs a round trip per lease, not per request. Not longer: a key reset in
// Redis, or a Redis that restarted empty, takes effect within a lease.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../../../mesh-proxy/store/types.ts';

/** Callers tracked at once; beyond this (after a sweep), new callers get per-request checks. */
const MAX_TRACKED = 10_000;
const SWEEP_EVERY_MS = 1000;
/** How often a full table may be swept to make room. */
const FULL_SWEEP_EVERY_MS = 100;

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
  /** When the check was sent: the slice's units, or a refusal, hold until `until`. */
  at: number;
  until: number;
  /** Units the next check asks for. */
  size: number;
  /** Requests waiting for the check in flight (undefined: none in flight). */
  waiters: Waiter[] | undefined;
}

/** The store answered a check with units it did not grant: treated as the store failing. */
export class SliceAnswerError extends Error {
  readonly code = 'RATE_LIMIT_STORE_ANSWER';
}

export class Slices {
  readonly #store: RateLimitStore;
  readonly #windows: readonly RateLimitWindow[];
  readonly #leaseMs: number;
  /** Largest slice these limits allow (below 2: every request is checked). */
  readonly #cap: number;
  readonly #checked: () => void;
  readonly #slices = new Map<string, Slice>();
  #nextSweep = 0;
  #nextFullSweep = 0;

  /** `checked` counts store round trips (a metric). */
  constructor(store: RateLimitStore, windows: readonly RateLimitWindow[], leaseMs: number, checked: () => void) {
    this.#store = store;
    this.#windows = windows;
    this.#leaseMs = leaseMs;
    this.#cap = sliceCap(windows, leaseMs);
    this.#checked = checked;
  }

  /** The verdict for one request: now when this gateway holds units or a refusal, else after a check. Rejects when the store cannot answer. */
  take(bucket: string, now: number): RateLimitDecision | Promise<RateLimitDecision> {
    if (now >= this.#nextSweep) this.#sweep(now, SWEEP_EVERY_MS);
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
      if (this.#slices.size >= MAX_TRACKED && now >= this.#nextFullSweep) {
        this.#nextFullSweep = now + FULL_SWEEP_EVERY_MS;
        this.#sweep(now, 0);
      }
      if (this.#slices.size >= MAX_TRACKED) return this.#checkOne(bucket);
      s = { units: 0, granted: 0, verdict: undefined, at: 0, until: 0, size: 1, waiters: undefined };
      this.#slices.set(bucket, s);
    }
    const waiters = s.waiters;
    // Once per lease per busy caller: the requests that arrive during its check wait for it.
    if (waiters !== undefined) return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    // Size the next slice on how the last one went: ran dry before its lease ended → double;
    // expired with units left → what was spent, and the rest goes back with this check.
    let returned = 0;
    if (s.granted > 0) {
      if (s.units === 0 && now < s.until) s.size = Math.min(this.#cap, s.size * 2);
      else if (s.units > 0) {
        s.size = Math.max(1, s.granted - s.units);
        returned = s.units;
      }
    }
    s.units = 0;
    s.granted = 0;
    s.until = 0;
    const slice = s;
    const first = new Promise<RateLimitDecision>((resolve, reject) => {
      slice.waiters = [{ resolve, reject }];
    });
    this.#check(bucket, slice, slice.size, returned);
    return first;
  }

  /** A per-request check (limits too tight to slice, or too many callers tracked); a refusal is remembered. */
  async #checkOne(bucket: string): Promise<RateLimitDecision> {
    this.#checked();
    const sentAt = Date.now();
    const d = await this.#store.consume(bucket, this.#windows, 1);
    if (!d.allowed) {
      const s = this.#slices.get(bucket);
      const until = sentAt + Math.min(d.retryAfterMs, this.#leaseMs);
      if (s !== undefined && s.waiters === undefined) {
        s.verdict = d;
        s.at = sentAt;
        s.until = until;
        s.units = 0;
        s.granted = 0;
      } else if (s === undefined && this.#slices.size < MAX_TRACKED) {
        this.#slices.set(bucket, { units: 0, granted: 0, verdict: d, at: sentAt, until, size: 1, waiters: undefined });
      }
    }
    return d;
  }

  #check(bucket: string, s: Slice, want: number, returned: number): void {
    this.#checked();
    const sentAt = Date.now();
    this.#store.consumeUpTo(bucket, this.#windows, want, returned).then(
      (d) => {
        if (d.allowed && !(d.granted >= 1)) this.#failed(s, new SliceAnswerError(`the store allowed a check but granted ${d.granted} units`));
        else this.#answered(bucket, s, d, sentAt);
      },
      (err: unknown) => this.#failed(s, err),
    );
  }

  #failed(s: Slice, err: unknown): void {
    const waiters = s.waiters!;
    s.waiters = undefined;
    for (const w of waiters) w.reject(err);
  }

  #answered(bucket: string, s: Slice, d: RateLimitDecision, sentAt: number): void {
    const waiters = s.waiters!;
    const now = Date.now();
    s.verdict = d;
    s.at = sentAt;
    if (!d.allowed) {
      s.waiters = undefined;
      s.units = 0;
      s.until = sentAt + Math.min(d.retryAfterMs, this.#leaseMs);
      for (const w of waiters) w.resolve(d);
      return;
    }
    s.granted = d.granted;
    s.units = d.granted;
    s.until = sentAt + this.#leaseMs;
    let i = 0;
    for (; i < waiters.length && s.units > 0; i++) {
      s.units--;
      waiters[i].resolve(spent(d, s, now));
    }
    if (i === waiters.length) {
      s.waiters = undefined;
      return;
    }
    // More requests waited than the slice held: they ask again, together (spent at once, so more
    // than a lease's share is fine); the store refuses them with the exact retry time when the
    // limit has no room left.
    const rest = waiters.slice(i);
    s.waiters = rest;
    s.size = Math.min(this.#cap, s.size * 2);
    s.granted = 0;
    this.#check(bucket, s, Math.max(s.size, rest.length), 0);
  }

  /** Drops callers whose lease ended: at once for those that never grew past one unit, `keepMs` later for the rest. */
  #sweep(now: number, keepMs: number): void {
    this.#nextSweep = now + SWEEP_EVERY_MS;
    for (const [k, s] of this.#slices) {
      if (s.waiters !== undefined || now < s.until) continue;
      if (s.size <= 1 || s.until + keepMs <= now) this.#slices.delete(k);
    }
  }
}

/** Largest slice: what the tightest window allows in one lease, never more than its max. */
function sliceCap(windows: readonly RateLimitWindow[], leaseMs: number): number {
  let cap = Infinity;
  for (const w of windows) cap = Math.min(cap, w.max, Math.floor((w.max * leaseMs) / w.periodMs));
  return cap;
}

/** One unit spent from a slice: the store's view at the check, plus the units still held here. */
function spent(v: RateLimitDecision, s: Slice, now: number): RateLimitDecision {
  return { allowed: true, granted: 1, window: v.window, limit: v.limit, remaining: v.remaining + s.units, resetMs: Math.max(0, v.resetMs - (now - s.at)), retryAfterMs: 0 };
}

/** A remembered refusal, its waits counted from the check. */
function refusal(v: RateLimitDecision, s: Slice, now: number): RateLimitDecision {
  return { allowed: false, granted: 0, window: v.window, limit: v.limit, remaining: 0, resetMs: Math.max(0, v.resetMs - (now - s.at)), retryAfterMs: Math.max(1, v.retryAfterMs - (now - s.at)) };
}
