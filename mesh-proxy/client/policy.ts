import { readFileSync } from 'node:fs';
import { parseDuration } from '../../config/duration.ts';
import type { ServicePolicy } from '../../config/schema.ts';
import { validators } from '../../config/validators.ts';
import type { BalancerKind } from '../balancer/create-balancer.ts';
import type { BreakerPolicy } from '../resilience/endpoint-breaker.ts';
import type { OutlierPolicy } from '../resilience/outlier-detector.ts';
import type { RetryBudgetPolicy } from '../resilience/retry-budget.ts';
import type { ConcurrencyPolicy } from '../resilience/concurrency-limit.ts';

export type RetryCondition = 'connect-failure' | 'reset' | 'timeout' | '502' | '503' | '504';

/** A service's client policy with durations resolved once, at load. */
export interface CompiledPolicy {
  readonly protocol: ServicePolicy['protocol'];
  /** TLS toward instances outside the mesh (protocol h2): extra trusted CAs (PEM) and the SNI name. */
  readonly tls: { readonly ca: string | undefined; readonly serverName: string | undefined } | undefined;
  readonly balancer: BalancerKind;
  readonly zone: { readonly prefer: boolean; readonly minHealthy: number; readonly minShare: number };
  readonly requestTimeoutMs: number;
  /** 0: a try may use the whole remaining deadline. */
  readonly perTryTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** An open WebSocket tunnel with no traffic either way for this long is closed. */
  readonly websocketIdleMs: number;
  /** A streaming (gRPC) response idle this long is reset. */
  readonly streamIdleMs: number;
  readonly connections: number;
  readonly keepAliveMs: number;
  readonly retry: {
    readonly attempts: number;
    readonly on: ReadonlySet<RetryCondition>;
    readonly budget: RetryBudgetPolicy;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
    readonly maxBodyBytes: number;
  };
  readonly limits: ConcurrencyPolicy;
  readonly breaker: BreakerPolicy & { readonly shared: boolean };
  readonly outlier: OutlierPolicy;
  readonly healthCheck?: {
    readonly path: string;
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly unhealthyThreshold: number;
    readonly healthyThreshold: number;
    /** Set: grpc.health.v1.Health/Check asking about this service name, instead of GET path. */
    readonly grpcService: string | undefined;
  };
}

export function compilePolicy(p: ServicePolicy): CompiledPolicy {
  const ms = parseDuration;
  return Object.freeze({
    protocol: p.protocol,
    tls: p.tls ? Object.freeze({ ca: p.tls.ca === undefined ? undefined : readPem(p.tls.ca), serverName: p.tls.serverName }) : undefined,
    balancer: p.balancer,
    zone: Object.freeze({ ...p.zone }),
    requestTimeoutMs: ms(p.timeouts.request),
    perTryTimeoutMs: p.timeouts.perTry ? ms(p.timeouts.perTry) : 0,
    connectTimeoutMs: ms(p.timeouts.connect),
    websocketIdleMs: ms(p.timeouts.websocketIdle),
    streamIdleMs: ms(p.timeouts.streamIdle),
    connections: p.pool.connections,
    keepAliveMs: ms(p.pool.keepAlive),
    retry: Object.freeze({
      attempts: p.retries.attempts,
      on: new Set(p.retries.on),
      budget: Object.freeze({ ratio: p.retries.budget.ratio, minPerSecond: p.retries.budget.minPerSecond, windowMs: ms(p.retries.budget.window) }),
      backoffBaseMs: ms(p.retries.backoff.base),
      backoffMaxMs: ms(p.retries.backoff.max),
      maxBodyBytes: p.retries.maxBodyBytes,
    }),
    limits: Object.freeze({ ...p.limits }),
    breaker: Object.freeze({
      consecutiveFailures: p.breaker.consecutiveFailures,
      errorRate: p.breaker.errorRate
        ? { above: p.breaker.errorRate.above, windowMs: ms(p.breaker.errorRate.window), minRequests: p.breaker.errorRate.minRequests }
        : undefined,
      openForMs: ms(p.breaker.openFor),
      maxOpenForMs: ms(p.breaker.maxOpenFor),
      halfOpenProbes: p.breaker.halfOpenProbes,
      shared: p.breaker.shared,
    }),
    outlier: Object.freeze({
      consecutive5xx: p.outlier.consecutive5xx,
      consecutiveConnectFailures: p.outlier.consecutiveConnectFailures,
      baseEjectionMs: ms(p.outlier.baseEjection),
      maxEjectionMs: ms(p.outlier.maxEjection),
      maxEjectedPercent: p.outlier.maxEjectedPercent,
    }),
    healthCheck: p.healthCheck
      ? Object.freeze({
          path: p.healthCheck.path,
          intervalMs: ms(p.healthCheck.interval),
          timeoutMs: ms(p.healthCheck.timeout),
          unhealthyThreshold: p.healthCheck.unhealthyThreshold,
          healthyThreshold: p.healthCheck.healthyThreshold,
          grpcService: p.healthCheck.grpc?.service,
        })
      : undefined,
  });
}

/** The policy of a service the config does not mention (the sidecar calls whatever the app names). */
export const DEFAULT_POLICY: CompiledPolicy = compilePolicy(defaultPolicy());

function defaultPolicy(): ServicePolicy {
  const p = {};
  if (!validators.validateService(p)) throw new Error('the default service policy does not validate');
  return p as ServicePolicy; // filled in by the validator's defaults
}

/** Inline PEM, or a file holding it (read once, when the policy is compiled at start). */
function readPem(v: string): string {
  if (v.startsWith('-----BEGIN')) return v;
  try {
    return readFileSync(v, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the CA file ${v} (services.*.tls.ca): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
