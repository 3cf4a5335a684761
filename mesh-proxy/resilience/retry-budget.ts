// A retry budget (Finagle's RetryBudget, linkerd2-proxy's `retry.budget`): retries may add at most
// `ratio` of the original traffic, plus a floor so low-traffic services can still retry. Unlike a
// per-request retry count, it cannot multiply load during an outage: when everything fails, retries
// stay at ratio × requests + minPerSecond × window.

export interface RetryBudgetPolicy {
  ratio: number;
  minPerSecond: number;
  windowMs: number;
}

export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetPolicy> = Object.freeze({
  ratio: 0.2,
  minPerSecond: 10,
  windowMs: 10_000,
});

/** Window resolution: windowMs / 10, so the window slides in tenths instead of resetting at once. */
const BUCKETS = 10;

export class RetryBudget {
  readonly #ratio: number;
  /** minPerSecond × window, computed once. */
  readonly #reserve: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #epoch: number;
  #sumRequests = 0;
  #sumRetries = 0;

  constructor(policy: RetryBudgetPolicy, now: () => number = Date.now) {
    if (!(policy.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    if (!(policy.ratio >= 0) || !(policy.minPerSecond >= 0)) throw new RangeError('ratio and minPerSecond must be >= 0');
    this.#ratio = policy.ratio;
    this.#reserve = (policy.minPerSecond * policy.windowMs) / 1000;
    this.#bucketMs = policy.windowMs / BUCKETS;
    this.#now = now;
    this.#epoch = Math.floor(now() / this.#bucketMs);
  }

  deposit(): void {
    this.#requests[this.#advance()]++;
    this.#sumRequests++;
  }

  tryWithdraw(): boolean {
    const head = this.#advance();
    if (this.#sumRetries + 1 > this.#ratio * this.#sumRequests + this.#reserve) return false;
    this.#retries[head]++;
    this.#sumRetries++;
    return true;
  }

  get requests(): number {
    this.#advance();
    return this.#sumRequests;
  }

  get retries(): number {
    this.#advance();
    return this.#sumRetries;
  }

  /** Slides the window to now, clearing the buckets that fell out; returns the head bucket's slot. */
  #advance(): number {
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    const gap = epoch - this.#epoch;
    // A clock that went backwards keeps counting into the head bucket.
    if (gap > 0) {
      if (gap >= BUCKETS) {
        this.#requests.fill(0);
        this.#retries.fill(0);
        this.#sumRequests = 0;
        this.#sumRetries = 0;
      } else {
        for (let e = this.#epoch + 1; e <= epoch; e++) {
          const i = slot(e);
          this.#sumRequests -= this.#requests[i];
          this.#sumRetries -= this.#retries[i];
          this.#requests[i] = 0;
          this.#retries[i] = 0;
        }
      }
      this.#epoch = epoch;
    }
    return slot(this.#epoch);
  }
}

function slot(epoch: number): number {
  return ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
}
