// Envoy-style outlier ejection (envoy: outlier_detection.proto, "consecutive 5xx" and "consecutive
// gateway/local-origin failure"), kept apart from the per-endpoint breaker: the breaker guards one
// proxy's calls, ejection takes a host out of the balancer's set for a while. State hangs off the
// endpoint object in a WeakMap, so endpoints that leave discovery take their state with them.
import type { Verdict } from './classify.ts';

export interface OutlierPolicy {
  /** 5xx responses, resets and timeouts in a row. */
  consecutive5xx: number;
  /** Connect failures in a row (no byte reached the host). */
  consecutiveConnectFailures: number;
  /** Ejection lasts base × (times ejected before + 1), up to max. */
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Never leave more than this share of the service ejected: ejecting everyone is an outage. */
  maxEjectedPercent: number;
}

class HostState {
  consecutive5xx = 0;
  consecutiveConnect = 0;
  /** 0 when not ejected by outlier detection. */
  ejectedUntil = 0;
  ejections = 0;
  /** Failed its last active health check: out until one passes. */
  unhealthy = false;
}

export class OutlierDetector<K extends object> {
  readonly #policy: Readonly<OutlierPolicy>;
  readonly #now: () => number;
  readonly #hosts = new WeakMap<K, HostState>();

  constructor(policy: OutlierPolicy, now: () => number = Date.now) {
    if (!(policy.consecutive5xx >= 1) || !(policy.consecutiveConnectFailures >= 1)) {
      throw new RangeError('outlier thresholds must be >= 1');
    }
    this.#policy = policy;
    this.#now = now;
  }

  record(ep: K, verdict: Verdict, members: readonly K[]): boolean {
    const h = this.#host(ep);
    // Outcomes of requests that were in flight when the host was ejected: the counters start afresh
    // when it returns.
    if (this.#ejected(h)) return false;
    switch (verdict) {
      case 'success':
        h.consecutive5xx = 0;
        h.consecutiveConnect = 0;
        return false;
      case 'connect-failure':
        // Says nothing about how the host answers: the 5xx run is left as it is.
        if (++h.consecutiveConnect < this.#policy.consecutiveConnectFailures) return false;
        break;
      default:
        // status-5xx, reset, timeout: a connection was made, so the connect run is over.
        h.consecutiveConnect = 0;
        if (++h.consecutive5xx < this.#policy.consecutive5xx) return false;
    }
    // At the threshold. If the cap refuses, the counters keep running (>=, not ==), so the next
    // failure tries again once another host has come back.
    if (!this.#roomToEject(members)) return false;
    h.ejectedUntil = this.#now() + Math.min(this.#policy.maxEjectionMs, this.#policy.baseEjectionMs * (h.ejections + 1));
    h.ejections++;
    h.consecutive5xx = 0;
    h.consecutiveConnect = 0;
    return true;
  }

  isEjected(ep: K): boolean {
    const h = this.#hosts.get(ep);
    return h !== undefined && this.#ejected(h);
  }

  /** 0 when not ejected; Infinity while held out by a failed health check (until one passes). */
  ejectedUntil(ep: K): number {
    const h = this.#hosts.get(ep);
    if (h === undefined || !this.#ejected(h)) return 0;
    return h.unhealthy ? Number.POSITIVE_INFINITY : h.ejectedUntil;
  }

  ejections(ep: K): number {
    return this.#hosts.get(ep)?.ejections ?? 0;
  }

  setHealthCheck(ep: K, healthy: boolean, members: readonly K[]): void {
    const h = this.#host(ep);
    if (healthy) {
      // Envoy's default (successful_active_health_check_uneject_host): a passing active check also
      // ends an outlier ejection.
      h.unhealthy = false;
      h.ejectedUntil = 0;
      h.consecutive5xx = 0;
      h.consecutiveConnect = 0;
      return;
    }
    // Already out: marking it changes no count. Otherwise the same cap applies; a refused mark is
    // retried by the next failing check.
    if (this.#ejected(h) || this.#roomToEject(members)) h.unhealthy = true;
  }

  #host(ep: K): HostState {
    let h = this.#hosts.get(ep);
    if (h === undefined) {
      h = new HostState();
      this.#hosts.set(ep, h);
    }
    return h;
  }

  /** Lazily ends an expired ejection. */
  #ejected(h: HostState): boolean {
    if (h.unhealthy) return true;
    if (h.ejectedUntil === 0) return false;
    if (this.#now() < h.ejectedUntil) return true;
    h.ejectedUntil = 0;
    return false;
  }

  /** Would one more ejection keep the ejected share within maxEjectedPercent? With one member at
   *  50% the answer is always no. Walks the members only at a threshold, never per request. */
  #roomToEject(members: readonly K[]): boolean {
    const max = Math.floor((members.length * this.#policy.maxEjectedPercent) / 100);
    if (max === 0) return false;
    let ejected = 0;
    for (let i = 0; i < members.length; i++) {
      const h = this.#hosts.get(members[i]);
      if (h !== undefined && this.#ejected(h) && ++ejected >= max) return false;
    }
    return true;
  }
}
