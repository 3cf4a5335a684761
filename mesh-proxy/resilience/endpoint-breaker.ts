// A per-endpoint circuit breaker: closed → open → half-open → closed. Kept apart from the service's
// concurrency limits and from outlier ejection, as Envoy keeps circuit breaking and outlier detection
// apart. Time advances lazily from the injected clock; there are no timers.

import { SlidingPair } from './sliding-pair.ts';

export interface BreakerPolicy {
  /** Open after this many consecutive failures. */
  consecutiveFailures: number;
  /** Or when failures / total over the sliding window exceeds `above` (a fraction, 0..1), once at
   *  least `minRequests` outcomes are in the window. */
  errorRate?: { above: number; windowMs: number; minRequests: number };
  /** First cool-down. */
  openForMs: number;
  /** The cool-down doubles with each consecutive trip, up to this. */
  maxOpenForMs: number;
  /** Concurrent probes while half-open; this many consecutive probe successes close the breaker. */
  halfOpenProbes: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';
export type BreakerTransition = { to: 'open'; untilMs: number } | { to: 'closed' } | undefined;

const CLOSED: BreakerTransition = Object.freeze({ to: 'closed' });
export class EndpointBreaker {
  readonly #policy: Readonly<BreakerPolicy>;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #openUntil = 0;
  #trips = 0;
  #consecutive = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;
  /** The current open (or the half-open that followed it) came from another proxy. */
  #remote = false;
  /** Requests and failures over the error-rate window, only when the policy asks for one. */
  readonly #window: SlidingPair | undefined;

  constructor(policy: BreakerPolicy, now: () => number = Date.now) {
    if (!(policy.consecutiveFailures >= 1)) throw new RangeError('consecutiveFailures must be >= 1');
    if (!(policy.halfOpenProbes >= 1)) throw new RangeError('halfOpenProbes must be >= 1');
    if (!(policy.openForMs > 0)) throw new RangeError('openForMs must be > 0');
    this.#policy = policy;
    this.#now = now;
    const rate = policy.errorRate;
    if (rate !== undefined && !(rate.windowMs > 0)) throw new RangeError('errorRate.windowMs must be > 0');
    this.#window = rate === undefined ? undefined : new SlidingPair(rate.windowMs, now);
  }

  get state(): BreakerState {
    return this.#refresh();
  }

  get openUntil(): number {
    this.#refresh();
    return this.#openUntil;
  }

  get trips(): number {
    return this.#trips;
  }

  allow(): boolean {
    const s = this.#refresh();
    if (s === 'closed') return true;
    if (s === 'open' || this.#probesInFlight >= this.#policy.halfOpenProbes) return false;
    this.#probesInFlight++;
    return true;
  }

  onSuccess(): BreakerTransition {
    const s = this.#refresh();
    if (s === 'closed') {
      this.#consecutive = 0;
      if (this.#window !== undefined) this.#record(false);
      return undefined;
    }
    // An outcome while open belongs to a request admitted before the trip: it says nothing new.
    // While half-open only a probe's outcome counts (the API carries no token, so a late outcome
    // from before the trip cannot be told from a probe once probes are in flight).
    if (s === 'open' || this.#probesInFlight === 0) return undefined;
    this.#probesInFlight--;
    if (++this.#probeSuccesses < this.#policy.halfOpenProbes) return undefined;
    this.#close();
    return CLOSED;
  }

  onFailure(): BreakerTransition {
    const s = this.#refresh();
    if (s === 'closed') {
      this.#consecutive++;
      if (this.#consecutive >= this.#policy.consecutiveFailures) return this.#trip();
      if (this.#window !== undefined && this.#record(true)) return this.#trip();
      return undefined;
    }
    if (s === 'open' || this.#probesInFlight === 0) return undefined;
    // A failed probe: the endpoint is still sick, and the cool-down doubles.
    return this.#trip();
  }

  onCancel(): void {
    if (this.#refresh() === 'half-open' && this.#probesInFlight > 0) this.#probesInFlight--;
  }

  openRemotely(untilMs: number): void {
    const s = this.#refresh();
    if (untilMs <= this.#now()) return; // stale news
    if (s === 'open') {
      // Extend, but the cause stays what it was: a local trip rests on local evidence, so a remote
      // close must not cut it short.
      if (untilMs > this.#openUntil) this.#openUntil = untilMs;
      return;
    }
    this.#open(untilMs);
    this.#remote = true;
  }

  closeRemotely(): void {
    if (this.#remote && this.#refresh() !== 'closed') this.#close();
  }

  /** Applies the one time-driven transition, open → half-open, and returns the state. */
  #refresh(): BreakerState {
    if (this.#state === 'open' && this.#now() >= this.#openUntil) {
      this.#state = 'half-open';
      this.#openUntil = 0;
      this.#probesInFlight = 0;
      this.#probeSuccesses = 0;
    }
    return this.#state;
  }

  #trip(): BreakerTransition {
    this.#trips++;
    // 2 ** n overflows to Infinity, which Math.min absorbs.
    const coolDown = Math.min(this.#policy.maxOpenForMs, this.#policy.openForMs * 2 ** (this.#trips - 1));
    const until = this.#now() + coolDown;
    this.#open(until);
    this.#remote = false;
    return { to: 'open', untilMs: until };
  }

  #open(until: number): void {
    this.#state = 'open';
    this.#openUntil = until;
    this.#consecutive = 0;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
  }

  #close(): void {
    this.#state = 'closed';
    this.#openUntil = 0;
    this.#trips = 0;
    this.#consecutive = 0;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
    this.#remote = false;
    // Failures from before the trip must not re-open a breaker the probes just closed.
    this.#window?.clear();
  }

  /** Counts an outcome in the window; true when the error rate now calls for a trip. */
  #record(failed: boolean): boolean {
    const w = this.#window!;
    w.advance();
    w.add(1, failed ? 1 : 0);
    if (!failed) return false;
    const rate = this.#policy.errorRate!;
    return w.first >= rate.minRequests && w.second / w.first > rate.above;
  }
}
