// Priority failover between datacenters for one service (Envoy's priority levels, with a
// configurable threshold instead of its fixed 1.4 overprovisioning factor): the local datacenter
// takes all traffic while its healthy share is at or above the threshold; below it, a shrinking
// part (share ÷ (threshold + hysteresis)) stays local and the rest goes to the first peer
// datacenter whose service has healthy endpoints. Fail-back to all-local needs the share at
// threshold + hysteresis for `failbackAfterMs`, so a share hovering at the threshold cannot flap.
// A datacenter whose service is entirely down is never chosen; with no healthy peer everything
// stays local (degraded beats nothing).

export interface Health {
  readonly healthy: number;
  readonly total: number;
}

export interface FailoverPolicy {
  readonly threshold: number;
  readonly hysteresis: number;
  readonly failbackAfterMs: number;
}

export type FailoverMode = 'local' | 'shifting';

export interface FailoverPlan {
  /** Share of new requests kept local, 0..1. */
  readonly localShare: number;
  /** Where the rest goes (undefined: nowhere healthy, so everything stays local). */
  readonly peer: string | undefined;
  readonly mode: FailoverMode;
}

export function healthyShare(h: Health): number {
  return h.total === 0 ? 0 : h.healthy / h.total;
}

export class ServiceFailover {
  readonly service: string;
  mode: FailoverMode = 'local';
  plan: FailoverPlan = { localShare: 1, peer: undefined, mode: 'local' };
  /** Since when (ms) the share has been good enough to fail back; 0: not now. */
  #recoveringSince = 0;
  readonly #p: FailoverPolicy;

  constructor(service: string, policy: FailoverPolicy) {
    this.service = service;
    this.#p = policy;
  }

  /** Recomputes the plan from the local health and the peers' (in priority order). Returns true when it changed. */
  update(local: Health, peers: ReadonlyArray<{ dc: string; health: Health | undefined }>, now: number): boolean {
    const p = this.#p;
    const share = healthyShare(local);
    const back = Math.min(1, p.threshold + p.hysteresis);
    if (this.mode === 'local') {
      if (share < p.threshold) {
        this.mode = 'shifting';
        this.#recoveringSince = 0;
      }
    } else if (share >= back) {
      if (this.#recoveringSince === 0) this.#recoveringSince = now;
      if (now - this.#recoveringSince >= p.failbackAfterMs) this.mode = 'local';
    } else this.#recoveringSince = 0;

    let next: FailoverPlan;
    const peer = peers.find((x) => x.health !== undefined && x.health.healthy > 0)?.dc;
    if (this.mode === 'local' || peer === undefined) next = { localShare: 1, peer, mode: this.mode };
    else next = { localShare: back === 0 ? 0 : Math.min(1, share / back), peer, mode: this.mode };
    const changed = next.localShare !== this.plan.localShare || next.peer !== this.plan.peer || next.mode !== this.plan.mode;
    this.plan = next;
    return changed;
  }

  /** The datacenter for one request: undefined = local. */
  pick(random: number): string | undefined {
    const plan = this.plan;
    if (plan.peer === undefined || random < plan.localShare) return undefined;
    return plan.peer;
  }
}
