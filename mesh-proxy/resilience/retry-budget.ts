// A retry budget (Finagle's RetryBudget, linkerd2-proxy's `retry.budget`): retries may add at most
// `ratio` of the original traffic, plus a floor so low-traffic services can still retry. Unlike a
// per-request retry count, it cannot multiply load during an outage: when everything fails, retries
// stay at ratio × requests + minPerSecond × window.
import { SlidingPair } from './sliding-pair.ts';

export interface RetryBudgetPolicy {
  ratio: number;
  minPerSecond: number;
  windowMs: number;
}

export class RetryBudget {
  readonly #ratio: number;
  /** minPerSecond × window, computed once. */
  readonly #reserve: number;
  /** Requests (first) and retries (second) over the window. */
  readonly #window: SlidingPair;

  constructor(policy: RetryBudgetPolicy, now: () => number = Date.now) {
    if (!(policy.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    if (!(policy.ratio >= 0) || !(policy.minPerSecond >= 0)) throw new RangeError('ratio and minPerSecond must be >= 0');
    this.#ratio = policy.ratio;
    this.#reserve = (policy.minPerSecond * policy.windowMs) / 1000;
    this.#window = new SlidingPair(policy.windowMs, now);
  }

  deposit(): void {
    this.#window.advance();
    this.#window.add(1, 0);
  }

  tryWithdraw(): boolean {
    const w = this.#window;
    w.advance();
    if (w.second + 1 > this.#ratio * w.first + this.#reserve) return false;
    w.add(0, 1);
    return true;
  }

  get requests(): number {
    this.#window.advance();
    return this.#window.first;
  }

  get retries(): number {
    this.#window.advance();
    return this.#window.second;
  }
}
