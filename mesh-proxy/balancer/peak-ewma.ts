// Per-endpoint latency estimate for load-aware balancing: Finagle's PeakEwma as ported to tower
// (tower/src/load/peak_ewma.rs) and used by linkerd2-proxy, whose defaults (tau 10 s, 30 ms before
// any sample) these are.
//
// It is "peak-sensitive": a sample above the estimate replaces it at once, so one slow response
// steers traffic away immediately; a sample below is blended in with a weight that depends on the
// time since the last update (samples arrive irregularly, so a per-sample alpha would make the
// decay rate depend on traffic). Reading the estimate decays it toward zero, as tower's load() does:
// without that, an endpoint that stopped getting traffic after one peak (a GC pause) would keep its
// worst estimate and be shunned for good, and a new endpoint whose default exceeds its peers' would
// never be tried at low concurrency.

export interface PeakEwmaOptions {
  /** tau: the time constant of the decay, in ms. */
  decayMs: number;
  /** The estimate before any sample: a moderate penalty, so a new endpoint is tried but not flooded. */
  defaultRttMs: number;
}

// Decay 3 s, not Finagle/Linkerd's 10 s: samples taken in a JavaScript proxy include its own event-
// loop pauses (GC), which the peak rule adopts at once for every endpoint; with 10 s they kept fast
// endpoints' estimates inflated long enough to push ~0.5% of steady traffic onto a 50 ms-slower one
// (0.09% with 3 s; loadtest scenario slow-instance).
export const PEAK_EWMA_DEFAULTS: Readonly<PeakEwmaOptions> = Object.freeze({ decayMs: 3_000, defaultRttMs: 30 });

const monotonicNow = (): number => performance.now();

export class PeakEwma {
  readonly #decayMs: number;
  readonly #now: () => number;
  #estimate: number;
  /** When the estimate was last updated (a sample or a read). */
  #stamp: number;
  #pending = 0;

  constructor(opts?: Partial<PeakEwmaOptions>, now: () => number = monotonicNow) {
    const decayMs = opts?.decayMs ?? PEAK_EWMA_DEFAULTS.decayMs;
    const defaultRttMs = opts?.defaultRttMs ?? PEAK_EWMA_DEFAULTS.defaultRttMs;
    if (!(decayMs > 0) || !Number.isFinite(decayMs)) throw new RangeError(`PeakEwma decayMs must be a positive number, got ${decayMs}`);
    if (!(defaultRttMs >= 0) || !Number.isFinite(defaultRttMs)) throw new RangeError(`PeakEwma defaultRttMs must be a non-negative number, got ${defaultRttMs}`);
    this.#decayMs = decayMs;
    this.#now = now;
    this.#estimate = defaultRttMs;
    this.#stamp = now();
  }

  /** Requests in flight to this endpoint. */
  get pending(): number {
    return this.#pending;
  }

  /** A request starts; returns its start time (pass to end()). */
  start(): number {
    this.#pending++;
    return this.#now();
  }

  /** A request ended (success or failure): decrements pending and observes rtt = now - startedAt. */
  end(startedAt: number): void {
    if (this.#pending > 0) this.#pending--;
    const now = this.#now();
    const rtt = now - startedAt;
    // A NaN or infinite rtt would poison the estimate for good; a negative one (a clock that
    // stepped back) counts as 0.
    if (!Number.isFinite(rtt)) return;
    this.#observe(rtt > 0 ? rtt : 0, now);
  }

  /** The current RTT estimate in ms (decayed to now). */
  get rttMs(): number {
    return this.#observe(0, this.#now());
  }

  /** Load used to compare endpoints: rttEstimate * (pending + 1). */
  load(): number {
    return this.rttMs * (this.#pending + 1);
  }

  #observe(rtt: number, now: number): number {
    if (rtt > this.#estimate) {
      this.#estimate = rtt;
    } else {
      const elapsed = now - this.#stamp;
      // A negative or NaN elapsed (a clock that stepped back) counts as none: w > 1 would amplify.
      const w = elapsed > 0 ? Math.exp(-elapsed / this.#decayMs) : 1;
      // estimate*w + rtt*(1-w), written so rounding can't leave [rtt, estimate].
      this.#estimate = Math.min(this.#estimate, rtt + (this.#estimate - rtt) * w);
    }
    // Never move the stamp backwards, or the next elapsed would count the same time twice.
    if (now > this.#stamp) this.#stamp = now;
    return this.#estimate;
  }
}
