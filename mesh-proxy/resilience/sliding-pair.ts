// Two counts over a sliding window (requests and failures, requests and retries): a ring of ten
// buckets advanced lazily from the clock, as Hystrix's rolling window, so the window slides in
// tenths instead of resetting at once. No timers, and nothing allocated per call.
const BUCKETS = 10;

export class SlidingPair {
  readonly #firsts = new Float64Array(BUCKETS);
  readonly #seconds = new Float64Array(BUCKETS);
  readonly #bucketMs: number;
  readonly #now: () => number;
  #epoch: number;
  #first = 0;
  #second = 0;

  constructor(windowMs: number, now: () => number) {
    if (!(windowMs > 0)) throw new RangeError('windowMs must be > 0');
    this.#bucketMs = windowMs / BUCKETS;
    this.#now = now;
    this.#epoch = Math.floor(now() / this.#bucketMs);
  }

  /** Sum of the first count over the window, as of the last advance(). */
  get first(): number {
    return this.#first;
  }

  get second(): number {
    return this.#second;
  }

  /** Slides the window to now, dropping the buckets that fell out of it. */
  advance(): void {
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    const gap = epoch - this.#epoch;
    // A clock that went backwards keeps counting into the head bucket.
    if (gap <= 0) return;
    if (gap >= BUCKETS) this.clear();
    else {
      for (let e = this.#epoch + 1; e <= epoch; e++) {
        const i = slot(e);
        this.#first -= this.#firsts[i];
        this.#second -= this.#seconds[i];
        this.#firsts[i] = 0;
        this.#seconds[i] = 0;
      }
    }
    this.#epoch = epoch;
  }

  /** Adds to the head bucket (call advance() first). */
  add(first: number, second: number): void {
    const i = slot(this.#epoch);
    this.#firsts[i] += first;
    this.#seconds[i] += second;
    this.#first += first;
    this.#second += second;
  }

  clear(): void {
    this.#firsts.fill(0);
    this.#seconds.fill(0);
    this.#first = 0;
    this.#second = 0;
  }
}

function slot(epoch: number): number {
  return ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
}
