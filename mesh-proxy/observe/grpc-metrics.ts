// gRPC calls by gRPC service, method and status (Envoy's grpc_stats filter, linkerd's per-route
// grpc metrics). The method comes from the client's path, so its label values are bounded: past
// MAX_METHODS distinct methods per proxy, further ones are counted as "other".
import { Counter, Histogram, type Registry } from 'prom-client';
import { GRPC_STATUS_NAMES, grpcMethodOf } from '../http/grpc.ts';
import type { Direction } from './request-metrics.ts';

const MAX_METHODS = 256;
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Labels = 'direction' | 'service' | 'grpc_service' | 'grpc_method';

export class GrpcMetrics {
  readonly #calls: Counter<Labels | 'grpc_code'>;
  readonly #duration: Histogram<Labels>;
  readonly #known = new Set<string>();

  constructor(registry: Registry) {
    const existing = registry.getSingleMetric('meshgate_grpc_requests_total');
    // One set per registry: the edge and the sidecar's listeners share it.
    if (existing !== undefined) {
      this.#calls = existing as Counter<Labels | 'grpc_code'>;
      this.#duration = registry.getSingleMetric('meshgate_grpc_request_duration_seconds') as Histogram<Labels>;
      return;
    }
    this.#calls = new Counter({
      name: 'meshgate_grpc_requests_total',
      help: 'gRPC calls ended, by mesh service, gRPC service, method and status code name (CANCELLED when the caller went away, UNKNOWN when the stream was reset without a status).',
      labelNames: ['direction', 'service', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: 'meshgate_grpc_request_duration_seconds',
      help: 'gRPC call duration, from the request to the end of the response stream.',
      labelNames: ['direction', 'service', 'grpc_service', 'grpc_method'],
      buckets: BUCKETS,
      registers: [registry],
    });
  }

  /** `status`: the gRPC status code, -1 when none was seen; `httpStatus` 499: the caller left. */
  record(direction: Direction, service: string, path: string, status: number, httpStatus: number, seconds: number): void {
    const m = grpcMethodOf(path);
    let grpcService = m?.service ?? 'other';
    let grpcMethod = m?.method ?? 'other';
    if (m !== undefined) {
      const key = `${grpcService}/${grpcMethod}`;
      if (!this.#known.has(key)) {
        if (this.#known.size >= MAX_METHODS) grpcService = grpcMethod = 'other';
        else this.#known.add(key);
      }
    }
    const code = status >= 0 ? (GRPC_STATUS_NAMES[status] ?? String(status)) : httpStatus === 499 ? 'CANCELLED' : 'UNKNOWN';
    const labels = { direction, service, grpc_service: grpcService, grpc_method: grpcMethod };
    this.#calls.inc({ ...labels, grpc_code: code });
    this.#duration.observe(labels, seconds);
  }
}
