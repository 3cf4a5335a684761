// Properties of the resilience state machines under arbitrary interleavings (fast-check): the
// breaker's states stay consistent, the retry budget never overspends a window, and the bulkhead
// never exceeds its limits and grants every admitted waiter exactly once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EndpointBreaker, type BreakerPolicy } from '../../mesh-proxy/resilience/endpoint-breaker.ts';
import { RetryBudget } from '../../mesh-proxy/resilience/retry-budget.ts';
import { ConcurrencyLimit, type Waiter } from '../../mesh-proxy/resilience/concurrency-limit.ts';

const RUNS = 300;

const breakerPolicy: fc.Arbitrary<BreakerPolicy> = fc.record(
  {
    consecutiveFailures: fc.integer({ min: 1, max: 6 }),
    errorRate: fc.record({
      above: fc.constantFrom(0, 0.25, 0.5, 0.9),
      windowMs: fc.constantFrom(1000, 10_000),
      minRequests: fc.integer({ min: 1, max: 10 }),
    }),
    openForMs: fc.integer({ min: 1, max: 2000 }),
    maxOpenForMs: fc.integer({ min: 1, max: 20_000 }),
    halfOpenProbes: fc.integer({ min: 1, max: 3 }),
  },
  { requiredKeys: ['consecutiveFailures', 'openForMs', 'maxOpenForMs', 'halfOpenProbes'] },
);

type Outcome = 'success' | 'failure' | 'cancel';
type BreakerOp =
  /** A request through the breaker: allow(), then its outcome if admitted (the normal path). */
  | { op: 'request'; outcome: Outcome }
  /** An outcome with no allow() before it: a late answer from before a trip. */
  | { op: 'stray'; outcome: Outcome }
  | { op: 'closeRemotely' }
  | { op: 'advance' | 'openRemotely'; ms: number }
  | { op: 'allow'; times: number };

const outcome = fc.constantFrom<Outcome>('success', 'success', 'success', 'failure', 'failure', 'cancel');
const breakerOp: fc.Arbitrary<BreakerOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('request' as const), outcome }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stray' as const), outcome }) },
  { weight: 1, arbitrary: fc.constant<BreakerOp>({ op: 'closeRemotely' }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('openRemotely' as const), ms: fc.integer({ min: -1000, max: 30_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('allow' as const), times: fc.integer({ min: 1, max: 5 }) }) },
);

describe('endpoint breaker properties', () => {
  test('state stays consistent under any sequence of outcomes, time and remote news', () => {
    // The generator must reach the interesting transitions, or the property proves little.
    let seenClose = false;
    let seenReopen = false;
    fc.assert(
      fc.property(breakerPolicy, fc.array(breakerOp, { maxLength: 150, size: 'max' }), (policy, ops) => {
        let t = 5_000_000;
        const b = new EndpointBreaker(policy, () => t);
        for (const o of ops) {
          const before = b.state;
          const tripsBefore = b.trips;
          switch (o.op) {
            case 'advance':
              t += o.ms;
              break;
            case 'openRemotely':
              b.openRemotely(t + o.ms);
              break;
            case 'closeRemotely':
              b.closeRemotely();
              break;
            case 'allow': {
              let admitted = 0;
              for (let i = 0; i < o.times; i++) if (b.allow()) admitted++;
              if (before === 'open') assert.equal(admitted, 0);
              if (before === 'closed') assert.equal(admitted, o.times);
              if (before === 'half-open') assert.ok(admitted <= policy.halfOpenProbes);
              break;
            }
            case 'request':
            case 'stray': {
              if (o.op === 'request' && !b.allow()) {
                assert.notEqual(before, 'closed');
                break;
              }
              if (o.outcome === 'cancel') {
                b.onCancel();
                break;
              }
              const tr = o.outcome === 'success' ? b.onSuccess() : b.onFailure();
              if (tr === undefined) break;
              if (tr.to === 'closed') {
                seenClose = true;
                assert.equal(o.outcome, 'success');
                assert.equal(before, 'half-open', 'only probes close it');
                assert.equal(b.trips, 0);
              } else {
                if (before === 'half-open') seenReopen = true;
                assert.equal(o.outcome, 'failure');
                assert.notEqual(before, 'open', 'an open breaker does not re-trip');
                assert.equal(b.trips, tripsBefore + 1);
                const coolDown = Math.min(policy.maxOpenForMs, policy.openForMs * 2 ** (b.trips - 1));
                assert.equal(tr.untilMs - t, coolDown);
              }
              break;
            }
          }
          // The invariants, after every step.
          const s = b.state;
          assert.ok(b.trips >= 0);
          if (s === 'open') {
            assert.ok(b.openUntil > t, 'open ⇒ openUntil in the future');
            assert.equal(b.allow(), false, 'open ⇒ allow() false');
          } else {
            assert.equal(b.openUntil, 0);
          }
          if (s === 'closed') {
            assert.equal(b.allow(), true, 'closed ⇒ allow() true');
            assert.equal(b.state, 'closed');
          }
        }
      }),
      { numRuns: RUNS },
    );
    assert.ok(seenClose && seenReopen, 'the runs closed from half-open and re-opened from it');
  });
});

type BudgetOp = { op: 'deposit' | 'withdraw' } | { op: 'advance'; ms: number };

describe('retry budget properties', () => {
  test('never allows more than ratio × requests + min × window within one window', () => {
    const policy = fc.record({
      ratio: fc.constantFrom(0, 0.1, 0.2, 0.5, 1),
      minPerSecond: fc.integer({ min: 0, max: 5 }),
      windowMs: fc.constantFrom(1000, 2500, 10_000),
    });
    const op: fc.Arbitrary<BudgetOp> = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom<BudgetOp>({ op: 'deposit' }, { op: 'withdraw' }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4000 }) }) },
    );
    fc.assert(
      fc.property(policy, fc.array(op, { maxLength: 300, size: 'max' }), (p, ops) => {
        let t = 0;
        const budget = new RetryBudget(p, () => t);
        const bucketMs = p.windowMs / 10;
        const reserve = (p.minPerSecond * p.windowMs) / 1000;
        // The reference: every event with its bucket.
        const deposits: number[] = [];
        const withdrawals: number[] = [];
        const inWindow = (xs: number[], e: number) => xs.filter((x) => x > e - 10 && x <= e).length;
        for (const o of ops) {
          const e = Math.floor(t / bucketMs);
          if (o.op === 'advance') t += o.ms;
          else if (o.op === 'deposit') {
            budget.deposit();
            deposits.push(e);
          } else {
            const requests = inWindow(deposits, e);
            const ok = budget.tryWithdraw();
            // Granted exactly when the budget has room: no overspend, and no needless refusal.
            assert.equal(ok, inWindow(withdrawals, e) + 1 <= p.ratio * requests + reserve);
            if (ok) {
              withdrawals.push(e);
              // Checked at grants only: once requests slide out, the retries they paid for may
              // outlast them for a while, but no new one is allowed until they do too.
              assert.ok(inWindow(withdrawals, e) <= p.ratio * requests + reserve);
            }
          }
          const now = Math.floor(t / bucketMs);
          assert.equal(budget.requests, inWindow(deposits, now));
          assert.equal(budget.retries, inWindow(withdrawals, now));
        }
      }),
      { numRuns: RUNS },
    );
  });
});

type LimitOp =
  | { op: 'acquire' | 'release' | 'tryRetry' | 'retryDone' }
  | { op: 'cancel'; pick: number };

class CountingWaiter implements Waiter {
  callbacks = 0;
  constructor(
    readonly id: number,
    readonly log: number[],
  ) {}
  granted(): void {
    this.callbacks++;
    this.log.push(this.id);
  }
}

describe('concurrency limit properties', () => {
  test('limits hold, grants are FIFO, and every admitted waiter is granted exactly once', () => {
    const policy = fc.record({
      maxConcurrent: fc.integer({ min: 1, max: 5 }),
      maxPending: fc.integer({ min: 0, max: 6 }),
      maxRetries: fc.integer({ min: 0, max: 3 }),
    });
    const op: fc.Arbitrary<LimitOp> = fc.oneof(
      fc.constantFrom<LimitOp>({ op: 'acquire' }, { op: 'release' }, { op: 'tryRetry' }, { op: 'retryDone' }),
      fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(policy, fc.array(op, { maxLength: 200, size: 'max' }), (p, ops) => {
        const limit = new ConcurrencyLimit(p);
        const log: number[] = [];
        const waiters: CountingWaiter[] = [];
        const result = new Map<CountingWaiter, 'granted' | 'queued' | 'rejected'>();
        const cancelled = new Set<CountingWaiter>();
        // The reference queue, in arrival order.
        let queue: CountingWaiter[] = [];
        let active = 0;
        let retries = 0;
        const check = () => {
          assert.ok(limit.active <= p.maxConcurrent);
          assert.ok(limit.pending <= p.maxPending);
          assert.ok(limit.activeRetries <= p.maxRetries);
          assert.equal(limit.active, active);
          assert.equal(limit.pending, queue.length);
          assert.equal(limit.activeRetries, retries);
          for (const w of waiters) assert.ok(w.callbacks <= 1);
        };
        for (const o of ops) {
          switch (o.op) {
            case 'acquire': {
              const w = new CountingWaiter(waiters.length, log);
              waiters.push(w);
              const expected = active < p.maxConcurrent ? 'granted' : queue.length < p.maxPending ? 'queued' : 'rejected';
              const r = limit.acquire(w);
              assert.equal(r, expected);
              result.set(w, r);
              if (r === 'granted') active++;
              else if (r === 'queued') queue.push(w);
              break;
            }
            case 'cancel': {
              if (waiters.length === 0) break;
              const w = waiters[o.pick % waiters.length];
              const wasQueued = queue.includes(w);
              assert.equal(limit.cancel(w), wasQueued);
              if (wasQueued) {
                cancelled.add(w);
                queue = queue.filter((x) => x !== w);
              }
              break;
            }
            case 'release': {
              if (active === 0) break; // only finished requests release
              const next = queue.shift();
              const before = log.length;
              limit.release();
              if (next === undefined) {
                active--;
                assert.equal(log.length, before);
              } else {
                assert.deepEqual(log.slice(before), [next.id], 'the head of the queue, synchronously');
              }
              break;
            }
            case 'tryRetry':
              if (limit.tryRetry()) retries++;
              else assert.equal(retries, p.maxRetries);
              break;
            case 'retryDone':
              if (retries > 0) {
                limit.retryDone();
                retries--;
              }
              break;
          }
          check();
        }
        // Drain: every request finishes, so every waiter still queued gets its turn.
        while (active > 0) {
          if (queue.shift() === undefined) active--;
          limit.release();
          check();
        }
        for (const w of waiters) {
          const r = result.get(w);
          const grants = (r === 'granted' ? 1 : 0) + w.callbacks;
          const expected = r === 'rejected' || cancelled.has(w) ? 0 : 1;
          assert.equal(grants, expected, `waiter ${w.id} (${r}${cancelled.has(w) ? ', cancelled' : ''})`);
        }
        // Callbacks came in arrival order.
        assert.deepEqual(log, [...log].sort((a, b) => a - b));
      }),
      { numRuns: RUNS },
    );
  });
});
