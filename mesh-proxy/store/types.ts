// The store is a few narrow interfaces, each with an in-memory and a Redis implementation.
// Nothing here knows about processes, listeners or policies.
import type { SplitSpec, TrafficSplit } from '../traffic/split.ts';

/** One registered instance of a service, as peers reach it (its sidecar's inbound listener). */
export interface Instance {
  readonly service: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly dc: string;
  readonly zone: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** The SPIFFE identity its sidecar presents (mTLS); absent: the endpoint speaks plain HTTP. */
  readonly identity?: string;
  /** 'h2': the endpoint speaks HTTP/2 (ALPN h2 over mTLS, prior knowledge in plaintext); absent: HTTP/1.1. */
  readonly protocol?: 'h2';
}

export type RegistryEvent =
  | { readonly kind: 'up'; readonly instance: Instance }
  | { readonly kind: 'down'; readonly service: string; readonly id: string };

export interface Registry {
  /** Upserts the instance with a time to live; called again as the heartbeat. */
  register(instance: Instance, ttlMs: number): Promise<void>;
  deregister(service: string, id: string): Promise<void>;
  /** Every live instance of every service; expired ones are purged (and announced) on the way. */
  snapshot(): Promise<Instance[]>;
  /** Change events, pushed by the store; returns a function that stops them. */
  watch(listener: (event: RegistryEvent) => void): () => void;
}

/** An endpoint's breaker opened or closed somewhere in the mesh. Durations are relative, so hosts' clocks never matter. */
export type BreakerEvent =
  | { readonly kind: 'open'; readonly service: string; readonly id: string; readonly remainingMs: number; readonly origin: string }
  | { readonly kind: 'close'; readonly service: string; readonly id: string; readonly origin: string };

export interface OpenBreaker {
  readonly service: string;
  readonly id: string;
  readonly remainingMs: number;
}

/** Open endpoint breakers, shared so every proxy stops sending to an endpoint one proxy found broken. */
export interface BreakerBoard {
  publishOpen(service: string, id: string, durationMs: number, origin: string): Promise<void>;
  publishClose(service: string, id: string, origin: string): Promise<void>;
  /** Breakers open right now (read at start-up and on every resync). */
  listOpen(): Promise<OpenBreaker[]>;
  watch(listener: (event: BreakerEvent) => void): () => void;
}

/** One window of a rate limit: at most `max` units per `periodMs`. */
export interface RateLimitWindow {
  readonly max: number;
  readonly periodMs: number;
}

/** The outcome of one check, reported for the window that constrains the caller most. */
export interface RateLimitDecision {
  readonly allowed: boolean;
  /** Units granted: the cost (consume) or up to `want` (consumeUpTo) when allowed, 0 when refused. */
  readonly granted: number;
  /** Index of the reported window in the list passed to consume(). */
  readonly window: number;
  readonly limit: number;
  /** Units still available in that window after this check. */
  readonly remaining: number;
  /** Milliseconds until that window is fully replenished. */
  readonly resetMs: number;
  /** When refused: milliseconds until one unit could pass (0 when allowed). */
  readonly retryAfterMs: number;
}

/**
 * Global rate-limit counters: one atomic check-and-consume across every process that shares the
 * store (GCRA per window, all windows in one step; a refused check consumes nothing). Rejects when
 * the store cannot answer; the caller decides to fail open or closed.
 */
export interface RateLimitStore {
  /** True when a check is a round trip to another process (Redis); false or absent: local memory. */
  readonly remote?: boolean;
  /** All or nothing: `cost` units when every window has room for them. */
  consume(key: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision>;
  /**
   * Up to `want` units, as many as every window has room for (`granted`; 0: refused), after giving
   * back `returned` units an earlier check took and did not spend.
   */
  consumeUpTo(key: string, windows: readonly RateLimitWindow[], want: number, returned: number): Promise<RateLimitDecision>;
}

export type SplitEvent = { readonly kind: 'put'; readonly split: TrafficSplit } | { readonly kind: 'delete'; readonly service: string };

/** Traffic splits, one per service, versioned; changes are pushed to every proxy. */
export interface SplitStore {
  list(): Promise<TrafficSplit[]>;
  /** Stores the service's split with the next version; with expectVersion, only if the current one is that (0: none yet). */
  put(service: string, spec: SplitSpec, expectVersion?: number): Promise<TrafficSplit>;
  /** True when there was one. */
  delete(service: string): Promise<boolean>;
  watch(listener: (event: SplitEvent) => void): () => void;
}

export type StoreStatus = 'up' | 'down';

export interface Store {
  readonly kind: 'memory' | 'redis';
  readonly registry: Registry;
  readonly breakers: BreakerBoard;
  readonly rateLimits: RateLimitStore;
  readonly splits: SplitStore;
  readonly status: StoreStatus;
  /** Called on every connectivity change (a Redis outage and its end). */
  onStatus(listener: (status: StoreStatus) => void): void;
  /** Resolves once connected, or false after timeoutMs: the caller goes on with what it has. */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export function isInstance(v: unknown): v is Instance {
  if (v === null || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.service === 'string' &&
    typeof o.id === 'string' &&
    typeof o.address === 'string' &&
    typeof o.port === 'number' &&
    typeof o.dc === 'string' &&
    typeof o.zone === 'string' &&
    o.metadata !== null &&
    typeof o.metadata === 'object' &&
    (o.identity === undefined || typeof o.identity === 'string') &&
    (o.protocol === undefined || o.protocol === 'h2')
  );
}
