// Resilience state machines with a fake clock: the endpoint breaker, outlier ejection, the retry
// budget, the concurrency limit (bulkhead), backoff and Retry-After, and the verdicts they consume.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyErrorCode, classifyGrpcStatus, classifyStatus, isFailure } from '../../mesh-proxy/resilience/classify.ts';
import { EndpointBreaker, type BreakerPolicy } from '../../mesh-proxy/resilience/endpoint-breaker.ts';
import { OutlierDetector, type OutlierPolicy } from '../../mesh-proxy/resilience/outlier-detector.ts';
import { RetryBudget } from '../../mesh-proxy/resilience/retry-budget.ts';
import { ConcurrencyLimit, type Waiter } from '../../mesh-proxy/resilience/concurrency-limit.ts';
import { backoffMs, retryAfterMs } from '../../mesh-proxy/resilience/backoff.ts';

class FakeClock {
  t = 1_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

const BREAKER: BreakerPolicy = { consecutiveFailures: 3, openForMs: 1000, maxOpenForMs: 5000, halfOpenProbes: 1 };

function breaker(policy: Partial<BreakerPolicy> = {}): { b: EndpointBreaker; clock: FakeClock } {
  const clock = new FakeClock();
  return { b: new EndpointBreaker({ ...BREAKER, ...policy }, clock.now), clock };
}

/** Admits and fails requests until the breaker trips; returns the transition. */
function tripNow(b: EndpointBreaker) {
  for (let i = 0; i < 100; i++) {
    assert.equal(b.allow(), true);
    const t = b.onFailure();
    if (t !== undefined) return t;
  }
  throw new Error('never tripped');
}

describe('classify', () => {
  test('statuses', () => {
    assert.equal(classifyStatus(200), 'success');
    assert.equal(classifyStatus(404), 'success');
    assert.equal(classifyStatus(499), 'success');
    for (const s of [500, 501, 502, 503, 504, 505, 599]) assert.equal(classifyStatus(s), 'status-5xx');
  });

  test('gRPC statuses: the server failed (UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS), or not', () => {
    for (const s of [2, 13, 14, 15]) assert.equal(classifyGrpcStatus(s), 'status-5xx', String(s));
    // OK, CANCELLED, the request's own faults, DEADLINE_EXCEEDED (the caller's budget), UNIMPLEMENTED.
    for (const s of [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16]) assert.equal(classifyGrpcStatus(s), 'success', String(s));
  });

  test('error codes', () => {
    for (const c of ['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH']) {
      assert.equal(classifyErrorCode(c), 'connect-failure', c);
    }
    for (const c of ['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'UND_ERR_CLOSED', 'EWHATEVER', undefined]) {
      assert.equal(classifyErrorCode(c), 'reset', String(c));
    }
    assert.equal(classifyErrorCode('UND_ERR_HEADERS_TIMEOUT'), 'timeout');
    assert.equal(classifyErrorCode('UND_ERR_BODY_TIMEOUT'), 'timeout');
  });

  test('isFailure', () => {
    assert.equal(isFailure('success'), false);
    for (const v of ['connect-failure', 'reset', 'timeout', 'status-5xx'] as const) assert.equal(isFailure(v), true);
  });
});

describe('endpoint breaker', () => {
  test('opens after N consecutive failures; a success in between resets the run', () => {
    const { b, clock } = breaker();
    b.onFailure();
    b.onFailure();
    assert.equal(b.onSuccess(), undefined);
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.state, 'closed');
    assert.deepEqual(b.onFailure(), { to: 'open', untilMs: clock.t + 1000 });
    assert.equal(b.state, 'open');
    assert.equal(b.openUntil, clock.t + 1000);
    assert.equal(b.trips, 1);
    assert.equal(b.allow(), false);
  });

  test('opens by error rate only once minRequests are in the window', () => {
    const { b, clock } = breaker({
      consecutiveFailures: 1000,
      errorRate: { above: 0.5, windowMs: 10_000, minRequests: 10 },
    });
    // 1. Five failures, three successes interleaved: 5/8 > 0.5 but only 8 requests.
    for (const ok of [false, true, false, true, false, true, false, false]) {
      assert.equal(ok ? b.onSuccess() : b.onFailure(), undefined);
    }
    assert.equal(b.state, 'closed');
    // 2. Ninth: a success, 5/9 — rate over, but still under minRequests and successes never trip.
    assert.equal(b.onSuccess(), undefined);
    // 3. Tenth: a failure, 6/10 > 0.5 with 10 requests: trips.
    assert.deepEqual(b.onFailure(), { to: 'open', untilMs: clock.t + 1000 });
  });

  test('error rate at exactly the threshold does not trip, and old outcomes slide out', () => {
    const { b, clock } = breaker({
      consecutiveFailures: 1000,
      errorRate: { above: 0.5, windowMs: 10_000, minRequests: 4 },
    });
    b.onSuccess();
    b.onSuccess();
    b.onFailure();
    assert.equal(b.onFailure(), undefined, '2/4 is not above 0.5');
    // 1. The window moves past all four: the next failures start from nothing.
    clock.advance(10_000);
    assert.equal(b.onFailure(), undefined, '1/1 but under minRequests');
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.onFailure(), undefined);
    assert.ok(b.onFailure() !== undefined, '4/4 trips');
  });

  test('the error-rate window slides bucket by bucket', () => {
    const { b, clock } = breaker({
      consecutiveFailures: 1000,
      errorRate: { above: 0.5, windowMs: 10_000, minRequests: 4 },
    });
    // Three successes at t0, then failures later: at t0+10s the successes have left the window.
    for (let i = 0; i < 3; i++) b.onSuccess();
    clock.advance(5000);
    assert.equal(b.onFailure(), undefined, '1/4');
    assert.equal(b.onFailure(), undefined, '2/5');
    assert.equal(b.onFailure(), undefined, '3/6 not above');
    clock.advance(5000);
    // Successes expired: 3 failures in the window; a fourth failure is 4/4.
    assert.ok(b.onFailure() !== undefined);
  });

  test('half-open once the cool-down passes; probes are limited', () => {
    const { b, clock } = breaker({ halfOpenProbes: 2 });
    tripNow(b);
    clock.advance(999);
    assert.equal(b.state, 'open');
    assert.equal(b.allow(), false);
    clock.advance(1);
    assert.equal(b.state, 'half-open');
    assert.equal(b.openUntil, 0);
    assert.equal(b.allow(), true);
    assert.equal(b.allow(), true);
    assert.equal(b.allow(), false, 'only two probes at once');
    b.onCancel();
    assert.equal(b.allow(), true, 'a cancelled probe frees its slot');
    assert.equal(b.allow(), false);
  });

  test('a run of probe successes closes it and resets trips', () => {
    const { b, clock } = breaker({ halfOpenProbes: 2 });
    tripNow(b);
    clock.advance(1000);
    assert.equal(b.allow(), true);
    assert.equal(b.onSuccess(), undefined, 'one of two');
    assert.equal(b.state, 'half-open');
    assert.equal(b.allow(), true);
    assert.equal(b.allow(), true);
    assert.equal(b.allow(), false);
    assert.deepEqual(b.onSuccess(), { to: 'closed' });
    assert.equal(b.state, 'closed');
    assert.equal(b.trips, 0);
    assert.equal(b.openUntil, 0);
    // The late outcome of the other probe changes nothing.
    assert.equal(b.onSuccess(), undefined);
    assert.equal(b.state, 'closed');
  });

  test('a failed probe re-opens with a doubled cool-down, capped at maxOpenForMs', () => {
    const { b, clock } = breaker();
    const expected = [1000, 2000, 4000, 5000, 5000];
    assert.deepEqual(tripNow(b), { to: 'open', untilMs: clock.t + expected[0] });
    for (let i = 1; i < expected.length; i++) {
      clock.advance(expected[i - 1]);
      assert.equal(b.state, 'half-open');
      assert.equal(b.allow(), true);
      assert.deepEqual(b.onFailure(), { to: 'open', untilMs: clock.t + expected[i] });
      assert.equal(b.trips, i + 1);
      assert.equal(b.openUntil, clock.t + expected[i]);
    }
    // Closing resets the doubling: the next trip is back to openForMs.
    clock.advance(5000);
    b.allow();
    b.onSuccess();
    assert.equal(b.state, 'closed');
    assert.deepEqual(tripNow(b), { to: 'open', untilMs: clock.t + 1000 });
    assert.equal(b.trips, 1);
  });

  test('outcomes while open (requests admitted before the trip) are ignored', () => {
    const { b, clock } = breaker();
    tripNow(b);
    const until = b.openUntil;
    assert.equal(b.onSuccess(), undefined);
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.openUntil, until);
    assert.equal(b.trips, 1);
    clock.advance(1000);
    // Half-open with no probe in flight: a stray outcome is not a probe's.
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.state, 'half-open');
  });

  test('opened remotely: no transition reported, closed remotely', () => {
    const { b, clock } = breaker();
    b.onFailure();
    b.openRemotely(clock.t + 3000);
    assert.equal(b.state, 'open');
    assert.equal(b.openUntil, clock.t + 3000);
    assert.equal(b.trips, 0, 'a remote open is not a local trip');
    assert.equal(b.allow(), false);
    b.closeRemotely();
    assert.equal(b.state, 'closed');
    assert.equal(b.allow(), true);
    // The local run of failures was cleared by the open: two more don't trip.
    assert.equal(b.onFailure(), undefined);
    assert.equal(b.onFailure(), undefined);
  });

  test('a remote open extends but never shortens; stale ones are ignored', () => {
    const { b, clock } = breaker();
    b.openRemotely(clock.t - 1);
    assert.equal(b.state, 'closed');
    b.openRemotely(clock.t + 3000);
    b.openRemotely(clock.t + 2000);
    assert.equal(b.openUntil, clock.t + 3000);
    b.openRemotely(clock.t + 4000);
    assert.equal(b.openUntil, clock.t + 4000);
  });

  test('a remote close does not close a local trip (even one a remote open extended)', () => {
    const { b, clock } = breaker();
    tripNow(b);
    b.closeRemotely();
    assert.equal(b.state, 'open');
    b.openRemotely(clock.t + 10_000);
    b.closeRemotely();
    assert.equal(b.state, 'open');
    assert.equal(b.openUntil, clock.t + 10_000);
    clock.advance(10_000);
    assert.equal(b.state, 'half-open');
    b.closeRemotely();
    assert.equal(b.state, 'half-open');
  });

  test('half-open after a remote open: closed remotely, or tripped locally by a failed probe', () => {
    const { b, clock } = breaker();
    b.openRemotely(clock.t + 1000);
    clock.advance(1000);
    assert.equal(b.state, 'half-open');
    b.closeRemotely();
    assert.equal(b.state, 'closed');

    b.openRemotely(clock.t + 1000);
    clock.advance(1000);
    assert.equal(b.allow(), true);
    assert.deepEqual(b.onFailure(), { to: 'open', untilMs: clock.t + 1000 });
    b.closeRemotely();
    assert.equal(b.state, 'open', 'now open on local evidence');
  });

  test('a remote open during half-open abandons the probes', () => {
    const { b, clock } = breaker();
    tripNow(b);
    clock.advance(1000);
    assert.equal(b.allow(), true);
    b.openRemotely(clock.t + 500);
    assert.equal(b.onFailure(), undefined, 'the probe outcome arrives while open');
    assert.equal(b.trips, 1);
    clock.advance(500);
    assert.equal(b.allow(), true, 'a fresh probe slot');
  });

  test('rejects nonsense policies', () => {
    assert.throws(() => new EndpointBreaker({ ...BREAKER, consecutiveFailures: 0 }), RangeError);
    assert.throws(() => new EndpointBreaker({ ...BREAKER, halfOpenProbes: 0 }), RangeError);
    assert.throws(() => new EndpointBreaker({ ...BREAKER, openForMs: 0 }), RangeError);
    assert.throws(
      () => new EndpointBreaker({ ...BREAKER, errorRate: { above: 0.5, windowMs: 0, minRequests: 1 } }),
      RangeError,
    );
  });
});

const OUTLIER: OutlierPolicy = {
  consecutive5xx: 3,
  consecutiveConnectFailures: 2,
  baseEjectionMs: 1000,
  maxEjectionMs: 2500,
  maxEjectedPercent: 50,
};

function hosts(n: number): { id: number }[] {
  return Array.from({ length: n }, (_, id) => ({ id }));
}

function outlier(policy: Partial<OutlierPolicy> = {}) {
  const clock = new FakeClock();
  return { d: new OutlierDetector<{ id: number }>({ ...OUTLIER, ...policy }, clock.now), clock };
}

describe('outlier detector', () => {
  test('ejects after N consecutive 5xx; resets and timeouts count as 5xx; a success resets', () => {
    const { d, clock } = outlier();
    const m = hosts(4);
    assert.equal(d.record(m[0], 'status-5xx', m), false);
    assert.equal(d.record(m[0], 'reset', m), false);
    assert.equal(d.record(m[0], 'success', m), false);
    assert.equal(d.record(m[0], 'timeout', m), false);
    assert.equal(d.record(m[0], 'status-5xx', m), false);
    assert.equal(d.isEjected(m[0]), false);
    assert.equal(d.record(m[0], 'reset', m), true);
    assert.equal(d.isEjected(m[0]), true);
    assert.equal(d.ejectedUntil(m[0]), clock.t + 1000);
    assert.equal(d.ejections(m[0]), 1);
    assert.equal(d.isEjected(m[1]), false);
    assert.equal(d.ejectedUntil(m[1]), 0);
    assert.equal(d.ejections(m[1]), 0);
  });

  test('ejects after N consecutive connect failures, counted apart from 5xx', () => {
    const { d } = outlier();
    const m = hosts(4);
    // A 5xx proves a connection: it ends the connect run. A connect failure leaves the 5xx run.
    assert.equal(d.record(m[0], 'connect-failure', m), false);
    assert.equal(d.record(m[0], 'status-5xx', m), false);
    assert.equal(d.record(m[0], 'connect-failure', m), false, 'the 5xx ended the first run');
    assert.equal(d.record(m[0], 'connect-failure', m), true, 'second connect failure in a row');
    assert.equal(d.isEjected(m[0]), true);

    assert.equal(d.record(m[1], 'status-5xx', m), false);
    assert.equal(d.record(m[1], 'connect-failure', m), false);
    assert.equal(d.record(m[1], 'status-5xx', m), false);
    assert.equal(d.record(m[1], 'status-5xx', m), true, 'three 5xx with a connect failure between');
  });

  test('un-ejects after its time; the ejection time grows with each ejection, capped', () => {
    const { d, clock } = outlier();
    const m = hosts(4);
    const expected = [1000, 2000, 2500, 2500];
    for (let i = 0; i < expected.length; i++) {
      d.record(m[0], 'connect-failure', m);
      assert.equal(d.record(m[0], 'connect-failure', m), true);
      assert.equal(d.ejectedUntil(m[0]), clock.t + expected[i]);
      assert.equal(d.ejections(m[0]), i + 1);
      clock.advance(expected[i] - 1);
      assert.equal(d.isEjected(m[0]), true);
      clock.advance(1);
      assert.equal(d.isEjected(m[0]), false);
      assert.equal(d.ejectedUntil(m[0]), 0);
    }
  });

  test('outcomes recorded while ejected are ignored; counters restart on return', () => {
    const { d, clock } = outlier();
    const m = hosts(4);
    d.record(m[0], 'connect-failure', m);
    d.record(m[0], 'connect-failure', m);
    for (let i = 0; i < 10; i++) assert.equal(d.record(m[0], 'status-5xx', m), false);
    clock.advance(1000);
    assert.equal(d.record(m[0], 'connect-failure', m), false);
    assert.equal(d.record(m[0], 'connect-failure', m), true);
    assert.equal(d.ejections(m[0]), 2);
  });

  test('max ejected percent: 2 of 4 at 50%, never the third; room again when one returns', () => {
    const { d, clock } = outlier();
    const m = hosts(4);
    const eject = (h: { id: number }) => d.record(h, 'connect-failure', m) || d.record(h, 'connect-failure', m);
    assert.equal(eject(m[0]), true);
    clock.advance(500);
    assert.equal(eject(m[1]), true);
    assert.equal(eject(m[2]), false);
    assert.equal(d.record(m[2], 'connect-failure', m), false, 'still refused');
    assert.equal(d.isEjected(m[2]), false);
    // 1. m[0] returns at t0+1000: the next failure of m[2], still past its threshold, ejects it.
    clock.advance(500);
    assert.equal(d.isEjected(m[0]), false);
    assert.equal(d.record(m[2], 'connect-failure', m), true);
    assert.equal([...m].filter((h) => d.isEjected(h)).length, 2);
  });

  test('a single member is never ejected at 50%; 1 of 3 is', () => {
    const { d } = outlier();
    const one = hosts(1);
    for (let i = 0; i < 20; i++) assert.equal(d.record(one[0], 'status-5xx', one), false);
    assert.equal(d.isEjected(one[0]), false);
    const three = hosts(3);
    for (let i = 0; i < 2; i++) d.record(three[0], 'connect-failure', three);
    assert.equal(d.isEjected(three[0]), true);
    for (let i = 0; i < 5; i++) d.record(three[1], 'connect-failure', three);
    assert.equal(d.isEjected(three[1]), false, 'floor(3 × 50%) = 1');
  });

  test('health checks: unhealthy until a check passes, counted against the cap; a pass also un-ejects', () => {
    const { d, clock } = outlier();
    const m = hosts(4);
    d.setHealthCheck(m[0], false, m);
    assert.equal(d.isEjected(m[0]), true);
    assert.equal(d.ejectedUntil(m[0]), Number.POSITIVE_INFINITY);
    assert.equal(d.ejections(m[0]), 0, 'a failed check is not an outlier ejection');
    clock.advance(1_000_000);
    assert.equal(d.isEjected(m[0]), true, 'no timeout on a failed check');
    // 1. Counted against the cap: one more fits, a third does not.
    d.setHealthCheck(m[1], false, m);
    assert.equal(d.isEjected(m[1]), true);
    d.setHealthCheck(m[2], false, m);
    assert.equal(d.isEjected(m[2]), false);
    d.record(m[3], 'connect-failure', m);
    assert.equal(d.record(m[3], 'connect-failure', m), false);
    // 2. Passing checks bring them back.
    d.setHealthCheck(m[0], true, m);
    d.setHealthCheck(m[1], true, m);
    assert.equal(d.isEjected(m[0]), false);
    assert.equal(d.ejectedUntil(m[0]), 0);
    // 3. A passing check also ends an outlier ejection (Envoy's default).
    assert.equal(d.record(m[3], 'connect-failure', m), true);
    d.setHealthCheck(m[3], true, m);
    assert.equal(d.isEjected(m[3]), false);
    // 4. Marking an already ejected host is allowed even at the cap.
    d.record(m[1], 'connect-failure', m);
    d.record(m[1], 'connect-failure', m);
    d.record(m[2], 'connect-failure', m);
    d.record(m[2], 'connect-failure', m);
    d.setHealthCheck(m[1], false, m);
    clock.advance(10_000);
    assert.equal(d.isEjected(m[1]), true, 'held out by the failed check after the ejection ran out');
    assert.equal(d.isEjected(m[2]), false);
  });
});

describe('retry budget', () => {
  test('with only failures, retries stay within 0.2 × requests + 100 over 10 s', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 }, clock.now);
    for (const n of [0, 50, 1000, 5000]) {
      const start = clock.t;
      let allowed = 0;
      // Every request fails and tries to retry until refused, spread over 9 s (one window).
      for (let i = 0; i < n; i++) {
        budget.deposit();
        while (budget.tryWithdraw()) allowed++;
        clock.t = start + Math.floor((i * 9000) / Math.max(1, n));
      }
      while (budget.tryWithdraw()) allowed++;
      assert.ok(allowed <= 0.2 * n + 100, `${allowed} retries for ${n} requests`);
      assert.equal(allowed, Math.floor(0.2 * n + 100), 'and the whole budget is usable');
      assert.equal(budget.requests, n);
      assert.equal(budget.retries, allowed);
      clock.advance(20_000); // empty window for the next round
      assert.equal(budget.requests, 0);
      assert.equal(budget.retries, 0);
    }
  });

  test('the window slides: old requests and retries fall out bucket by bucket', () => {
    const clock = new FakeClock();
    clock.t = 0;
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0, windowMs: 10_000 }, clock.now);
    for (let i = 0; i < 10; i++) budget.deposit(); // bucket 0
    clock.t = 5000;
    for (let i = 0; i < 4; i++) budget.deposit(); // bucket 5
    let n = 0;
    while (budget.tryWithdraw()) n++;
    assert.equal(n, 7, '0.5 × 14');
    // 1. At 10 s bucket 0 leaves: 4 requests, 7 retries: no more.
    clock.t = 10_000;
    assert.equal(budget.requests, 4);
    assert.equal(budget.retries, 7);
    assert.equal(budget.tryWithdraw(), false);
    // 2. At 15 s everything from before has left.
    clock.t = 15_000;
    assert.equal(budget.requests, 0);
    assert.equal(budget.retries, 0);
    assert.equal(budget.tryWithdraw(), false, 'no reserve, no requests');
    budget.deposit();
    budget.deposit();
    assert.equal(budget.tryWithdraw(), true);
    assert.equal(budget.tryWithdraw(), false);
  });

  test('the per-second floor lets a quiet service retry', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 3000 }, clock.now);
    assert.equal(budget.tryWithdraw(), true);
    assert.equal(budget.tryWithdraw(), true);
    assert.equal(budget.tryWithdraw(), true);
    assert.equal(budget.tryWithdraw(), false);
    clock.advance(3000);
    assert.equal(budget.tryWithdraw(), true);
  });
});

class TestWaiter implements Waiter {
  static order: number[] = [];
  grants = 0;
  constructor(readonly id: number) {}
  granted(): void {
    this.grants++;
    TestWaiter.order.push(this.id);
  }
}

describe('concurrency limit', () => {
  test('granted, then queued, then rejected; release grants the next in FIFO order', () => {
    TestWaiter.order = [];
    const limit = new ConcurrencyLimit({ maxConcurrent: 2, maxPending: 3, maxRetries: 1 });
    const w = Array.from({ length: 7 }, (_, i) => new TestWaiter(i));
    assert.equal(limit.acquire(w[0]), 'granted');
    assert.equal(limit.acquire(w[1]), 'granted');
    assert.equal(limit.acquire(w[2]), 'queued');
    assert.equal(limit.acquire(w[3]), 'queued');
    assert.equal(limit.acquire(w[4]), 'queued');
    assert.equal(limit.acquire(w[5]), 'rejected');
    assert.equal(limit.active, 2);
    assert.equal(limit.pending, 3);
    limit.release();
    assert.deepEqual(TestWaiter.order, [2], 'granted synchronously');
    assert.equal(limit.active, 2);
    assert.equal(limit.pending, 2);
    assert.equal(limit.acquire(w[6]), 'queued', 'a freed queue place, not a slot');
    limit.release();
    limit.release();
    limit.release();
    assert.deepEqual(TestWaiter.order, [2, 3, 4, 6]);
    limit.release();
    limit.release();
    assert.equal(limit.active, 0);
    assert.equal(limit.pending, 0);
    limit.release();
    assert.equal(limit.active, 0, 'an extra release cannot go negative');
    assert.ok(w.every((x) => x.grants <= 1));
  });

  test('cancel removes a queued waiter; it is never granted', () => {
    TestWaiter.order = [];
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxPending: 10, maxRetries: 0 });
    const w = Array.from({ length: 5 }, (_, i) => new TestWaiter(i));
    limit.acquire(w[0]);
    for (let i = 1; i < 5; i++) assert.equal(limit.acquire(w[i]), 'queued');
    assert.equal(limit.cancel(w[2]), true);
    assert.equal(limit.cancel(w[2]), false, 'already gone');
    assert.equal(limit.cancel(w[0]), false, 'active, not queued');
    assert.equal(limit.cancel(w[1]), true);
    assert.equal(limit.pending, 2);
    limit.release();
    limit.release();
    assert.deepEqual(TestWaiter.order, [3, 4]);
    assert.equal(limit.pending, 0);
    assert.equal(limit.active, 1);
    assert.equal(w[1].grants + w[2].grants, 0);
  });

  test('maxPending 0 rejects at once when full', () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxPending: 0, maxRetries: 0 });
    assert.equal(limit.acquire(new TestWaiter(0)), 'granted');
    assert.equal(limit.acquire(new TestWaiter(1)), 'rejected');
  });

  test('a waiter may re-enter from granted()', () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxPending: 10, maxRetries: 0 });
    const seen: string[] = [];
    const quick: Waiter = {
      granted() {
        seen.push('quick');
        limit.release(); // finishes at once: hands the slot on
      },
    };
    const last: Waiter = { granted: () => seen.push('last') };
    limit.acquire(new TestWaiter(0));
    limit.acquire(quick);
    limit.acquire(last);
    limit.release();
    assert.deepEqual(seen, ['quick', 'last']);
    assert.equal(limit.active, 1);
    assert.equal(limit.pending, 0);
  });

  test('a long queue stays FIFO across compaction and cancellations', () => {
    TestWaiter.order = [];
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxPending: 10_000, maxRetries: 0 });
    limit.acquire(new TestWaiter(-1));
    const w = Array.from({ length: 1000 }, (_, i) => new TestWaiter(i));
    for (const x of w) limit.acquire(x);
    for (let i = 0; i < 1000; i += 3) limit.cancel(w[i]);
    const expected = w.filter((_, i) => i % 3 !== 0).map((x) => x.id);
    for (let i = 0; i < 600; i++) limit.release();
    for (let i = 0; i < 300; i++) limit.acquire(new TestWaiter(1000 + i));
    while (limit.pending > 0) limit.release();
    for (let i = 0; i < 300; i++) expected.push(1000 + i);
    assert.deepEqual(TestWaiter.order, expected);
  });

  test('concurrent retries are capped', () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 10, maxPending: 10, maxRetries: 2 });
    assert.equal(limit.tryRetry(), true);
    assert.equal(limit.tryRetry(), true);
    assert.equal(limit.tryRetry(), false);
    assert.equal(limit.activeRetries, 2);
    limit.retryDone();
    assert.equal(limit.tryRetry(), true);
    limit.retryDone();
    limit.retryDone();
    limit.retryDone();
    assert.equal(limit.activeRetries, 0);
  });
});

describe('backoff', () => {
  test('full jitter within [0, min(max, base × 2^attempt)]', () => {
    assert.equal(backoffMs(0, 100, 10_000, () => 0), 0);
    assert.equal(backoffMs(0, 100, 10_000, () => 0.999999), 100);
    assert.equal(backoffMs(3, 100, 10_000, () => 0.999999), 800);
    assert.equal(backoffMs(10, 100, 10_000, () => 0.999999), 10_000);
    assert.equal(backoffMs(5000, 100, 10_000, () => 0.999999), 10_000, 'no overflow');
    assert.equal(backoffMs(2, 100, 10_000, () => 0.5), 200);
    for (let attempt = 0; attempt < 20; attempt++) {
      for (let i = 0; i < 50; i++) {
        const ms = backoffMs(attempt, 25, 2000);
        assert.ok(ms >= 0 && ms <= Math.min(2000, 25 * 2 ** attempt) && Number.isInteger(ms), `${attempt}: ${ms}`);
      }
    }
  });

  test('Retry-After in seconds', () => {
    assert.equal(retryAfterMs('0', 60_000), 0);
    assert.equal(retryAfterMs('3', 60_000), 3000);
    assert.equal(retryAfterMs(' 120 ', 60_000), 60_000, 'capped');
    assert.equal(retryAfterMs('99999999999999999999', 60_000), 60_000);
    for (const bad of [undefined, '', '  ', '-1', '1.5', '3s', '+3', 'soon', '1 2']) {
      assert.equal(retryAfterMs(bad, 60_000), undefined, String(bad));
    }
  });

  test('Retry-After as an HTTP-date', () => {
    const now = () => Date.UTC(2015, 9, 21, 7, 28, 0);
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:30 GMT', 60_000, now), 30_000);
    assert.equal(retryAfterMs('Wednesday, 21-Oct-15 07:28:10 GMT', 60_000, now), 10_000, 'RFC 850');
    assert.equal(retryAfterMs('Wed Oct 21 07:28:05 2015', 60_000, () => new Date(2015, 9, 21, 7, 28, 0).getTime()), 5000, 'asctime');
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 08:28:00 GMT', 60_000, now), 60_000, 'capped');
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:00:00 GMT', 60_000, now), 0, 'in the past');
    assert.equal(retryAfterMs('Wed, 99 Foo 2015 07:00:00 GMT', 60_000, now), undefined);
  });
});
