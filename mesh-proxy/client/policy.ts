import { parseDuration } from '../../config/duration.ts';
import type { ServicePolicy } from '../../config/schema.ts';
import { ServicePolicySchema } from '../../config/schema.ts';
import { Value } from '@sinclair/typebox/value';

/** A service's client policy with durations resolved once, at load. */
export interface CompiledPolicy {
  readonly protocol: ServicePolicy['protocol'];
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
  readonly keepAliveMs: number;
}

export function compilePolicy(p: ServicePolicy): CompiledPolicy {
  return Object.freeze({
    protocol: p.protocol,
    requestTimeoutMs: parseDuration(p.timeouts.request),
    connectTimeoutMs: parseDuration(p.timeouts.connect),
    connections: p.pool.connections,
    keepAliveMs: parseDuration(p.pool.keepAlive),
  });
}

/** The policy of a service the config does not mention (the sidecar calls whatever the app names). */
export const DEFAULT_POLICY: CompiledPolicy = compilePolicy(Value.Default(ServicePolicySchema, {}) as ServicePolicy);
