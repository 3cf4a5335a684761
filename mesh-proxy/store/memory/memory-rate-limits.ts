// Rate-limit counters for the embedded store: GCRA (the generic cell rate algorithm, as in
// redis-cell and Stripe's limiter) per window, kept as one "theoretical arrival time" per window.
// c units pass when, for every window, TAT' = max(TAT, now) + c·T stays within now + period
// (T = period / max); only then are the windows advanced.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../types.ts';
import { gcra, gcraUpTo, idleAt } from '../gcra.ts';

/** Idle keys are forgotten once every window has fully replenished (swept at most this often). */
const SWEEP_EVERY_MS = 10_000;

interface Entry {
  /** Per window: whole ms and fraction of its theoretical arrival time (see gcra.ts). */
  tats: number[];
  /** When every window is back to full: the entry can be dropped. */
  idleAt: number;
}

export class MemoryRateLimits implements RateLimitStore {
  readonly remote = false;
  readonly #entries = new Map<string, Entry>();
  #nextSweep = 0;

  async consume(key: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    return this.consumeNow(key, windows, cost, Date.now());
  }

  async consumeUpTo(key: string, windows: readonly RateLimitWindow[], want: number, returned: number): Promise<RateLimitDecision> {
    const now = Date.now();
    const entry = this.#entry(key, windows, now);
    const d = gcraUpTo(entry.tats, windows, want, returned, now);
    entry.idleAt = idleAt(entry.tats);
    return d;
  }

  /** The synchronous core, also the local backstop a Redis-backed limiter falls back to. */
  consumeNow(key: string, windows: readonly RateLimitWindow[], cost: number, now: number): RateLimitDecision {
    const entry = this.#entry(key, windows, now);
    const d = gcra(entry.tats, windows, cost, now);
    if (d.allowed) entry.idleAt = idleAt(entry.tats);
    return d;
  }

  #entry(key: string, windows: readonly RateLimitWindow[], now: number): Entry {
    if (now >= this.#nextSweep) this.#sweep(now);
    let entry = this.#entries.get(key);
    if (entry === undefined || entry.tats.length !== 2 * windows.length) {
      entry = { tats: new Array<number>(2 * windows.length).fill(0), idleAt: 0 };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  get size(): number {
    return this.#entries.size;
  }

  #sweep(now: number): void {
    this.#nextSweep = now + SWEEP_EVERY_MS;
    for (const [k, e] of this.#entries) if (e.idleAt <= now) this.#entries.delete(k);
  }
}
