// Envoy's circuit-breaking thresholds for one upstream service (max_requests, max_pending_requests,
// max_retries): a bulkhead. When both the active slots and the bounded queue are full the caller
// answers 503 OVERLOADED at once; nothing waits without bound.

/** Called when a queued request gets its slot. */
export interface Waiter {
  granted(): void;
}

export interface ConcurrencyPolicy {
  maxConcurrent: number;
  maxPending: number;
  /** Retries in flight at once, across the service. */
  maxRetries: number;
}

/** Below this the consumed head of the queue is left in place; above it, compacted when it is over
 *  half the array. Amortised O(1) per dequeue. */
const COMPACT_AFTER = 64;

export class ConcurrencyLimit {
  readonly #maxConcurrent: number;
  readonly #maxPending: number;
  readonly #maxRetries: number;
  #active = 0;
  #activeRetries = 0;
  /** FIFO: live entries from #head on; cancelled ones are nulled out and skipped. */
  #queue: (Waiter | null)[] = [];
  #head = 0;
  #pending = 0;

  constructor(policy: ConcurrencyPolicy) {
    if (!(policy.maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be >= 1');
    if (!(policy.maxPending >= 0) || !(policy.maxRetries >= 0)) throw new RangeError('maxPending and maxRetries must be >= 0');
    this.#maxConcurrent = policy.maxConcurrent;
    this.#maxPending = policy.maxPending;
    this.#maxRetries = policy.maxRetries;
  }

  get active(): number {
    return this.#active;
  }

  get pending(): number {
    return this.#pending;
  }

  get activeRetries(): number {
    return this.#activeRetries;
  }

  acquire(w: Waiter): 'granted' | 'queued' | 'rejected' {
    // release() hands a freed slot straight to the queue, so a free slot implies an empty queue:
    // a newcomer never overtakes a waiter.
    if (this.#active < this.#maxConcurrent) {
      this.#active++;
      return 'granted';
    }
    if (this.#pending >= this.#maxPending) return 'rejected';
    this.#queue.push(w);
    this.#pending++;
    return 'queued';
  }

  cancel(w: Waiter): boolean {
    // O(pending) scan, bounded by maxPending; cancelling is the rare path, so no index map is kept
    // per waiter.
    if (this.#pending === 0) return false;
    const i = this.#queue.indexOf(w, this.#head);
    if (i < 0) return false;
    this.#queue[i] = null;
    this.#pending--;
    if (this.#pending === 0) this.#reset();
    return true;
  }

  release(): void {
    // A release without an acquire is a caller bug; going negative would lift the limit for good.
    if (this.#active === 0) return;
    if (this.#pending === 0) {
      this.#active--;
      return;
    }
    const q = this.#queue;
    let w = q[this.#head];
    while (w === null) w = q[++this.#head];
    q[this.#head++] = null;
    this.#pending--;
    if (this.#pending === 0) this.#reset();
    else if (this.#head > COMPACT_AFTER && this.#head * 2 > q.length) {
      q.copyWithin(0, this.#head);
      q.length -= this.#head;
      this.#head = 0;
    }
    // The slot passes to the waiter: #active is unchanged. State is settled before the callback,
    // which may re-enter (release or acquire) synchronously.
    (w as Waiter).granted();
  }

  tryRetry(): boolean {
    if (this.#activeRetries >= this.#maxRetries) return false;
    this.#activeRetries++;
    return true;
  }

  retryDone(): void {
    if (this.#activeRetries > 0) this.#activeRetries--;
  }

  #reset(): void {
    this.#queue.length = 0;
    this.#head = 0;
  }
}
