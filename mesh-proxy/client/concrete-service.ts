// One destination service as the mesh client sees it (linkerd's "concrete" layer): the bulkhead
// (concurrency limits), the endpoints that are available (breaker closed or probing, not ejected),
// the caller's zone first, a balancer, and after each try one verdict that feeds the endpoint's
// latency estimate, its breaker and outlier detection, and the retry decision.
import type { Endpoint, EndpointSource } from '../discovery/endpoint.ts';
import { createBalancer, statsOf } from '../balancer/create-balancer.ts';
import type { Balancer } from '../balancer/p2c.ts';
import { preferZone } from '../balancer/zone-filter.ts';
import { backoffMs, retryAfterMs } from '../resilience/backoff.ts';
import { isFailure, type Verdict } from '../resilience/classify.ts';
import { ConcurrencyLimit } from '../resilience/concurrency-limit.ts';
import { EndpointBreaker, type BreakerTransition } from '../resilience/endpoint-breaker.ts';
import { OutlierDetector } from '../resilience/outlier-detector.ts';
import { RetryBudget } from '../resilience/retry-budget.ts';
import type { ResilienceMetrics } from '../observe/resilience-metrics.ts';
import { Attempt, dispatchAttempt, headerOf, type AttemptOwner } from './attempt.ts';
import { ERROR_HEADER } from '../http/error-reply.ts';
import { Mirror } from '../traffic/mirror.ts';
import type { EndpointPools } from './endpoint-pools.ts';
import { classifyTransportError } from './errors.ts';
import { GrpcKind } from '../http/grpc.ts';
import type { Exchange, ExchangeHolder } from './exchange.ts';
import type { CompiledPolicy, RetryCondition } from './policy.ts';
import { readBody } from './request-body.ts';
import { Tunnel } from './tunnel.ts';

export interface ServiceContext {
  readonly cache: EndpointSource;
  readonly pools: EndpointPools;
  readonly zone: string;
  readonly metrics: ResilienceMetrics;
  /** A local breaker opened or closed (the client shares it through the store). */
  breakerChanged(svc: ConcreteService, ep: Endpoint, t: NonNullable<BreakerTransition>): void;
}

// A failed try feeds the latency estimate this much (peak-EWMA takes peaks at once), so a fast-
// failing endpoint does not attract traffic by looking quick (cf. Linkerd's failure-penalizing biaser).
const FAILURE_PENALTY_MS = 1000;
const RETRY_STATUS: Readonly<Record<number, RetryCondition>> = { 502: '502', 503: '503', 504: '504' };

function retryLater(svc: ConcreteService, ex: Exchange): void {
  svc.retryNow(ex);
}

export class ConcreteService implements AttemptOwner, ExchangeHolder {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly limit: ConcurrencyLimit;
  readonly budget: RetryBudget;
  readonly outlier: OutlierDetector<Endpoint>;
  readonly #balancer: Balancer;
  readonly #breakers = new WeakMap<Endpoint, EndpointBreaker>();
  readonly #ctx: ServiceContext;
  /** Some endpoint may be unavailable: filter before balancing (otherwise use the list as is). */
  #degraded = false;
  #mirror: Mirror | undefined;
  /** Remote opens for endpoints this proxy has not seen yet: applied when they appear. */
  readonly #remoteOpen = new Map<string, number>();

  constructor(name: string, policy: CompiledPolicy, ctx: ServiceContext) {
    this.name = name;
    this.policy = policy;
    this.#ctx = ctx;
    this.#balancer = createBalancer(policy.balancer);
    this.limit = new ConcurrencyLimit(policy.limits);
    this.budget = new RetryBudget(policy.retry.budget);
    this.outlier = new OutlierDetector<Endpoint>(policy.outlier);
  }

  breakerOf(ep: Endpoint): EndpointBreaker {
    let b = this.#breakers.get(ep);
    if (b === undefined) {
      b = new EndpointBreaker(this.policy.breaker);
      this.#breakers.set(ep, b);
      const remote = this.#remoteOpen.get(ep.instance.id);
      if (remote !== undefined) {
        this.#remoteOpen.delete(ep.instance.id);
        if (remote > Date.now()) this.#openRemotely(b, remote);
      }
    }
    return b;
  }

  /** Another proxy opened this instance's breaker: stop choosing it until untilMs (local clock). */
  remoteOpen(id: string, untilMs: number): void {
    const ep = this.#find(id);
    if (ep !== undefined) {
      this.#openRemotely(this.breakerOf(ep), untilMs);
      return;
    }
    // Kept for an endpoint this proxy may learn of later; expired entries go first, so the map stays
    // bounded by the breakers open right now.
    const now = Date.now();
    for (const [k, until] of this.#remoteOpen) if (until <= now) this.#remoteOpen.delete(k);
    this.#remoteOpen.set(id, untilMs);
  }

  /** Something outside the request path (a health check) changed which endpoints are available. */
  availabilityChanged(): void {
    this.#degraded = true;
  }

  remoteClose(id: string): void {
    this.#remoteOpen.delete(id);
    const ep = this.#find(id);
    if (ep !== undefined) this.#breakers.get(ep)?.closeRemotely();
  }

  // --- admission --------------------------------------------------------------------------------

  /** Entry from the mesh client, once the exchange's deadline is set. */
  start(ex: Exchange): void {
    ex.holder = this;
    switch (this.limit.acquire(ex)) {
      case 'granted':
        ex.slot = 'active';
        this.#begin(ex);
        return;
      case 'queued':
        ex.slot = 'queued';
        return;
      case 'rejected':
        ex.slot = 'none';
        this.#ctx.metrics.overload(this.name, 'pending');
        ex.fail('OVERLOADED', `service "${this.name}" is at its concurrency limit (${this.policy.limits.maxConcurrent} in flight, ${this.policy.limits.maxPending} waiting)`);
    }
  }

  /** A queued exchange got its slot (ConcurrencyLimit → Exchange.granted()). */
  admitted(ex: Exchange): void {
    ex.slot = 'active';
    if (ex.done) this.limit.release();
    else this.#begin(ex);
  }

  released(ex: Exchange, tryInFlight: boolean): void {
    if (ex.slot === 'active' && tryInFlight) {
      // The cancelled try may still wait in undici's queue for a connection: the slot is freed
      // when it settles, or the bulkhead would admit more than its limits.
      ex.slot = 'draining';
      return;
    }
    if (ex.slot === 'active') this.limit.release();
    else if (ex.slot === 'queued') this.limit.cancel(ex);
    ex.slot = 'none';
  }

  #begin(ex: Exchange): void {
    this.budget.deposit();
    const retry = this.policy.retry;
    if (ex.hasBody && ex.body === null && !ex.streamedBody) {
      // Bodies that may need replaying are read first, up to a bound; larger or unsized ones
      // stream and are never retried once sent (linkerd's 64 KiB replay buffer).
      if (retry.attempts > 0 && ex.contentLength >= 0 && ex.contentLength <= retry.maxBodyBytes) {
        readBody(ex, this);
        return;
      }
      ex.streamedBody = true;
    }
    this.#try(ex);
  }

  /** request-body.ts calls back here once a replayable body is in memory. */
  bodyReady(ex: Exchange): void {
    if (!ex.done) this.#try(ex);
  }

  // --- tries ------------------------------------------------------------------------------------

  #try(ex: Exchange): void {
    const now = performance.now();
    const ep = this.#pick(ex);
    if (ep === undefined) {
      const known = this.#ctx.cache.get(this.name)?.endpoints.length ?? 0;
      ex.fail(
        'NO_ENDPOINTS',
        known === 0
          ? `service "${this.name}" has no available endpoints`
          : `service "${this.name}" has no available endpoints (${known} known, all ejected or with open circuit breakers)`,
      );
      return;
    }
    if (ex.tries === 0 && ex.split?.split.mirror !== undefined) this.#maybeMirror(ex);
    ex.tries++;
    ex.lastEndpoint = ep;
    ex.stampDeadline(now);
    // An upgrade's try is a tunnel of its own rather than a pooled request (tunnel.ts).
    const a =
      ex.upgrade === undefined
        ? new Attempt(ex, ep, this, statsOf(ep).ewma.start())
        : new Tunnel(ex, ep, this, statsOf(ep).ewma.start(), this.#ctx.pools.connector(ep, this.policy), ex.websocketIdleMs || this.policy.websocketIdleMs);
    a.isRetry = ex.tries > 1;
    ex.current = a;
    if (a instanceof Tunnel) {
      a.start();
      return;
    }
    const remaining = Math.max(1, Math.ceil(ex.remainingMs(now)));
    const perTry = ex.perTryTimeoutMs || this.policy.perTryTimeoutMs;
    // After the response starts only idleness is bounded; a streaming call (gRPC) by its own bound.
    const idle = ex.grpc === GrpcKind.None ? this.policy.requestTimeoutMs : this.policy.streamIdleMs;
    dispatchAttempt(this.#ctx.pools.get(ep, this.policy), a, perTry > 0 ? Math.min(perTry, remaining) : remaining, idle);
  }

  /**
   * After the backoff. The retry slot taken when the retry was decided is held until the retry's
   * own try settles (Envoy's max_retries counts retries in flight); released here only when no try
   * starts.
   */
  retryNow(ex: Exchange): void {
    const before = ex.tries;
    if (!ex.done) this.#try(ex);
    // No try started (the exchange ended, or no endpoint): the slot is still ours to free. A try
    // that started owns it, even if it already settled synchronously.
    if (ex.tries === before) this.limit.retryDone();
  }

  #pick(ex: Exchange): Endpoint | undefined {
    const everything = this.#ctx.cache.get(this.name)?.endpoints;
    if (everything === undefined || everything.length === 0) return undefined;
    let all = everything;
    if (ex.split !== undefined) {
      const subset = ex.split.endpointsOf(everything, ex.subset);
      // A subset with no instance (a canary not deployed yet) does not fail its share of traffic:
      // the rest of the service takes it, counted in meshgate_split_fallbacks_total.
      if (subset.length > 0) all = subset;
      else if (ex.tries === 0) this.#ctx.metrics.splitFallback(this.name, ex.subset);
    }
    let candidates = all;
    if (this.#degraded) {
      candidates = all.filter(this.#available, this);
      // Only a look at every endpoint can say that none is unavailable any more.
      if (all === everything && candidates.length === everything.length) this.#degraded = false;
      if (candidates.length === 0 && all !== everything) {
        // Every endpoint of the subset is broken or ejected: likewise, the rest of the service serves.
        candidates = everything.filter(this.#available, this);
        if (ex.tries === 0) this.#ctx.metrics.splitFallback(this.name, ex.subset);
      }
      if (candidates.length === 0) return undefined;
    }
    const z = this.policy.zone;
    if (z.prefer) candidates = preferZone(candidates, this.#ctx.zone, z.minHealthy, z.minShare);
    let ep = this.#balancer.pick(candidates)!;
    // A retry goes to another endpoint when there is one (P2C is random: a second draw usually differs).
    if (ex.lastEndpoint === ep && candidates.length > 1) {
      ep = this.#balancer.pick(candidates)!;
      if (ep === ex.lastEndpoint) ep = candidates[(candidates.indexOf(ep) + 1) % candidates.length];
    }
    if (this.breakerOf(ep).allow()) return ep;
    // Half-open with its probe slots taken: any other endpoint that admits the request.
    for (const c of candidates) if (c !== ep && this.breakerOf(c).allow()) return c;
    return undefined;
  }

  #maybeMirror(ex: Exchange): void {
    const m = ex.split!.split.mirror!;
    if (Math.random() * 100 >= m.percent) return;
    const all = this.#ctx.cache.get(this.name)?.endpoints ?? [];
    this.#mirror ??= new Mirror(this.name, this.#ctx.metrics.mirrors);
    this.#mirror.send(ex, m.subset, ex.split!.endpointsOf(all, m.subset), (ep) => this.#ctx.pools.get(ep, this.policy));
  }

  #available(this: ConcreteService, ep: Endpoint): boolean {
    return this.breakerOf(ep).state !== 'open' && !this.outlier.isEjected(ep);
  }

  // --- outcomes (AttemptOwner) ------------------------------------------------------------------

  retryOnStatus(a: Attempt, status: number, rawHeaders: readonly string[]): boolean {
    const cond = RETRY_STATUS[status];
    if (cond === undefined || !this.policy.retry.on.has(cond)) return this.#rescueInstead(a, status, rawHeaders);
    this.#releaseRetrySlot(a); // this try is over either way; its slot may serve the next
    if (!this.#mayRetry(a.ex, true, cond)) return this.#rescueInstead(a, status, rawHeaders);
    if (status === 503) a.retryAfter = headerOf(rawHeaders, 'retry-after');
    return true;
  }

  /**
   * No retry left here, but another datacenter could serve it: a sidecar's own 502/503 (its app
   * unreachable, x-meshgate-error) is dropped and the exchange failed locally, which offers it to
   * the datacenter failover (Exchange.fail) before any error reaches the client.
   */
  #rescueInstead(a: Attempt, status: number, rawHeaders: readonly string[]): boolean {
    const ex = a.ex;
    if (ex.failover === undefined || (status !== 502 && status !== 503) || headerOf(rawHeaders, ERROR_HEADER) === undefined) return false;
    ex.rescueAfterDiscard = true;
    return true;
  }

  settled(a: Attempt, verdict: Verdict, err: (Error & { code?: string }) | undefined): void {
    const ex = a.ex;
    if (ex.current === a) ex.current = undefined;
    if (ex.slot === 'draining') {
      ex.slot = 'none';
      this.limit.release();
    }
    this.#releaseRetrySlot(a);
    if (a.rejectedRequest) {
      // Refused by undici before sending (e.g. a duplicate Host header): the request is at fault.
      statsOf(a.endpoint).ewma.end(a.startedAt);
      this.breakerOf(a.endpoint).onCancel();
      ex.fail('BAD_REQUEST', `the request cannot be forwarded: ${err?.message ?? 'rejected'}`);
      return;
    }
    this.#record(a, verdict);
    if (a.discarding && ex.rescueAfterDiscard) {
      ex.rescueAfterDiscard = false;
      ex.fail('UPSTREAM_UNAVAILABLE', `every try of service "${this.name}" failed (the last: ${a.endpoint.authority})`);
      return;
    }
    if (a.discarding) {
      // The response was dropped for a retry (budget already taken in retryOnStatus).
      if (ex.done) this.limit.retryDone();
      else this.#scheduleRetry(ex, a);
      return;
    }
    if (err === undefined || ex.done) return;
    const cond = verdict as RetryCondition; // connect-failure | reset | timeout
    if (!ex.committed && this.policy.retry.on.has(cond) && this.#mayRetry(ex, a.sent, cond)) {
      this.#scheduleRetry(ex, a);
      return;
    }
    const e = classifyTransportError(err, a.endpoint.authority);
    ex.fail(e.code, e.message);
  }

  #record(a: Attempt, verdict: Verdict): void {
    const ep = a.endpoint;
    const ewma = statsOf(ep).ewma;
    const breaker = this.breakerOf(ep);
    if (a.cancelledByCaller) {
      // The caller left, or its own deadline passed: says nothing about the endpoint.
      ewma.end(a.startedAt);
      breaker.onCancel();
      return;
    }
    const failed = isFailure(verdict);
    ewma.end(failed && verdict !== 'status-5xx' ? performance.now() - FAILURE_PENALTY_MS : a.startedAt);
    const t = failed ? breaker.onFailure() : breaker.onSuccess();
    if (t !== undefined) {
      if (t.to === 'open') this.#degraded = true;
      this.#ctx.metrics.breakerTransition(this.name, t.to);
      this.#ctx.breakerChanged(this, ep, t);
    }
    const all = this.#ctx.cache.get(this.name)?.endpoints ?? [];
    if (this.outlier.record(ep, verdict, all)) {
      this.#degraded = true;
      this.#ctx.metrics.ejection(this.name);
    }
  }

  /**
   * Whether one more try is allowed: the request is safe to repeat (nothing reached the upstream,
   * or the method is idempotent, or the route opted in), the body can be replayed, tries remain,
   * time remains, and both the retry concurrency limit and the retry budget have room.
   */
  #mayRetry(ex: Exchange, sent: boolean, cond: RetryCondition): boolean {
    if (ex.done || ex.committed || ex.tries > this.policy.retry.attempts) return false;
    if (!ex.retriableBody) return false;
    if (sent && !ex.mayRetryAfterSend()) return false;
    if (ex.remainingMs() <= this.policy.retry.backoffBaseMs) return false;
    if (!this.limit.tryRetry()) {
      this.#ctx.metrics.overload(this.name, 'retries');
      return false;
    }
    if (!this.budget.tryWithdraw()) {
      this.limit.retryDone();
      this.#ctx.metrics.budgetExhausted(this.name);
      return false;
    }
    this.#ctx.metrics.retry(this.name, cond);
    return true;
  }

  #scheduleRetry(ex: Exchange, a: Attempt): void {
    const r = this.policy.retry;
    const hinted = a.retryAfter !== undefined ? retryAfterMs(a.retryAfter, r.backoffMaxMs) : undefined;
    const delay = hinted ?? backoffMs(ex.tries - 1, r.backoffBaseMs, r.backoffMaxMs);
    setTimeout(retryLater, delay, this, ex);
  }

  #releaseRetrySlot(a: Attempt): void {
    if (a.isRetry && !a.slotReleased) {
      a.slotReleased = true;
      this.limit.retryDone();
    }
  }

  #openRemotely(b: EndpointBreaker, untilMs: number): void {
    b.openRemotely(untilMs);
    this.#degraded = true;
  }

  #find(id: string): Endpoint | undefined {
    for (const ep of this.#ctx.cache.get(this.name)?.endpoints ?? []) if (ep.instance.id === id) return ep;
    return undefined;
  }
}
