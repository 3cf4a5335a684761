// One active health check through an endpoint's own pool (HTTP/1.1 or HTTP/2 alike): a GET of a
// path that must answer 2xx, or the gRPC health-checking protocol (grpc/doc/health-checking.md):
// grpc.health.v1.Health/Check must end with grpc-status 0 and the status SERVING.
import type { UpstreamPool } from '../client/endpoint-pools.ts';

/** HealthCheckResponse.status SERVING: field 1, varint 1. */
const SERVING = Buffer.from([0x08, 0x01]);

export interface ProbeSpec {
  readonly path: string;
  readonly timeoutMs: number;
  /** Set: ask grpc.health.v1.Health/Check about this service name ("" = the whole server). */
  readonly grpcService: string | undefined;
  /** The Host / :authority to send. */
  readonly authority: string;
}

/** A HealthCheckRequest { service } as one gRPC length-prefixed message. */
export function healthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // field 1 (string): tag 0x0a, a length varint, the bytes; names over 127 bytes need a longer varint.
  const len = name.length < 0x80 ? Buffer.from([name.length]) : Buffer.from([(name.length & 0x7f) | 0x80, name.length >> 7]);
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), len, name]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

class ProbeHandler {
  status = 0;
  grpcStatus: string | undefined;
  readonly chunks: Buffer[] = [];
  readonly done: Promise<boolean>;
  #resolve!: (ok: boolean) => void;
  readonly #grpc: boolean;

  constructor(grpc: boolean) {
    this.#grpc = grpc;
    this.done = new Promise((r) => (this.#resolve = r));
  }

  onConnect(): void {}
  onHeaders(status: number, raw: string[]): boolean {
    this.status = status;
    for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'grpc-status') this.grpcStatus = raw[i + 1];
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.#grpc && this.chunks.length < 16) this.chunks.push(chunk);
    return true;
  }
  onComplete(trailers?: string[] | Record<string, string | string[] | undefined> | null): void {
    if (trailers && !Array.isArray(trailers) && typeof trailers['grpc-status'] === 'string') this.grpcStatus = trailers['grpc-status'];
    if (!this.#grpc) {
      this.#resolve(this.status >= 200 && this.status < 300);
      return;
    }
    const body = Buffer.concat(this.chunks);
    // One message whose payload is exactly `status: SERVING`.
    this.#resolve(this.status === 200 && this.grpcStatus === '0' && body.length === 5 + SERVING.length && body.subarray(5).equals(SERVING));
  }
  onError(): void {
    this.#resolve(false);
  }
}

/** True when the endpoint passed. Never throws. */
export function probe(pool: UpstreamPool, spec: ProbeSpec): Promise<boolean> {
  const grpc = spec.grpcService !== undefined;
  const h = new ProbeHandler(grpc);
  const opts = grpc
    ? {
        path: '/grpc.health.v1.Health/Check',
        method: 'POST',
        headers: ['host', spec.authority, 'content-type', 'application/grpc', 'te', 'trailers', 'user-agent', 'meshgate-health-check', 'grpc-timeout', `${spec.timeoutMs}m`],
        body: healthCheckRequest(spec.grpcService!),
      }
    : { path: spec.path, method: 'GET', headers: ['host', spec.authority, 'user-agent', 'meshgate-health-check'], body: null };
  pool.dispatch({ ...opts, headersTimeout: spec.timeoutMs, bodyTimeout: spec.timeoutMs }, h);
  return h.done;
}
