// The remaining deadline travels with a request to every hop, as a relative duration (clocks of
// different hosts never need to agree): meshgate's own header, and gRPC's `grpc-timeout`
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md: 1-8 digits and a unit).
export const TIMEOUT_HEADER = 'x-meshgate-timeout-ms';

const GRPC_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Milliseconds left, or undefined when the value is not a valid timeout. */
export function parseTimeoutMs(value: string): number | undefined {
  if (value.length === 0 || value.length > 12) return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

export function parseGrpcTimeout(value: string): number | undefined {
  if (value.length < 2 || value.length > 9) return undefined;
  const unit = GRPC_UNIT_MS[value[value.length - 1]];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d{1,8}$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/** gRPC's form of a remaining duration: milliseconds while they fit in 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(0, Math.floor(ms));
  return v < 1e8 ? `${v}m` : `${Math.min(99_999_999, Math.floor(v / 1000))}S`;
}
