// A real gRPC server and client for tests (@grpc/grpc-js): an Echo service with the four call
// types, knobs for delays, failures and large payloads, and what the server observed.
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { resolve } from 'node:path';

const PROTO = resolve(import.meta.dirname, '../fixtures/grpc/echo.proto');
const LIMITS = { 'grpc.max_receive_message_length': 16 << 20, 'grpc.max_send_message_length': 16 << 20 };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pkg = grpc.loadPackageDefinition(loader.loadSync(PROTO, { keepCase: true, defaults: true, longs: Number })) as any;

export interface EchoRequest {
  message?: string;
  payload?: Buffer;
  count?: number;
  delay_ms?: number;
  fail_code?: number;
  fail_message?: string;
}
export interface EchoReply {
  message: string;
  payload: Buffer;
  index: number;
}

export interface EchoServer {
  readonly port: number;
  /** Calls the server saw cancelled by their caller. */
  cancelled: number;
  /** The deadline of the last call (ms from now when it arrived; Infinity: none). */
  lastDeadlineMs: number;
  /** The request metadata of the last call. */
  lastMetadata: Record<string, unknown>;
  /** Messages a client stream / bidi call received so far. */
  received: string[];
  /** What grpc.health.v1.Health/Check answers for every service name. */
  health: 'SERVING' | 'NOT_SERVING';
  /** Health checks answered so far. */
  healthChecks: number;
  /** Every unary call fails with this status when set (0: none); `unaryCalls` counts them all. */
  failCode: number;
  unaryCalls: number;
  close(): Promise<void>;
}

/** An insecure (h2c) Echo server on 127.0.0.1 with the standard health service. */
export async function startEchoServer(): Promise<EchoServer> {
  const server = new grpc.Server(LIMITS);
  const s: EchoServer = { port: 0, cancelled: 0, lastDeadlineMs: Infinity, lastMetadata: {}, received: [], health: 'SERVING', healthChecks: 0, failCode: 0, unaryCalls: 0, close: async () => {} };
  const observe = (call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerReadableStream<EchoRequest, EchoReply> | grpc.ServerWritableStream<EchoRequest, EchoReply> | grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
    const d = call.getDeadline();
    s.lastDeadlineMs = d instanceof Date ? d.getTime() - Date.now() : Number.isFinite(d) ? Number(d) - Date.now() : Infinity;
    s.lastMetadata = call.metadata.getMap();
    (call as grpc.ServerUnaryCall<EchoRequest, EchoReply>).on('cancelled', () => s.cancelled++);
  };
  const failure = (req: EchoRequest): grpc.ServiceError | undefined => {
    if (s.failCode) return Object.assign(new Error('the server is failing'), { code: s.failCode, details: 'the server is failing', metadata: new grpc.Metadata() });
    if (!req.fail_code) return undefined;
    const md = new grpc.Metadata();
    md.set('x-fail-detail', 'yes');
    md.set('x-fail-bin', Buffer.from([0, 1, 2, 255]));
    return Object.assign(new Error(req.fail_message || 'failed'), { code: req.fail_code, details: req.fail_message || 'failed', metadata: md });
  };
  server.addService(pkg.meshgate.test.Echo.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      observe(call);
      s.unaryCalls++;
      const err = failure(call.request);
      if (err) return cb(err);
      const initial = new grpc.Metadata();
      initial.set('x-echo-initial', '1');
      call.sendMetadata(initial);
      const reply = () => {
        const trailer = new grpc.Metadata();
        trailer.set('x-echo-trailer', 'done');
        cb(null, { message: call.request.message ?? '', payload: call.request.payload ?? Buffer.alloc(0), index: 0 }, trailer);
      };
      if (!call.request.delay_ms) return reply();
      const t = setTimeout(reply, call.request.delay_ms);
      call.on('cancelled', () => clearTimeout(t));
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      observe(call);
      let i = 0;
      const next = () => {
        if (call.cancelled) return;
        if (i >= (call.request.count ?? 0)) return call.end();
        call.write({ message: call.request.message ?? '', payload: Buffer.alloc(0), index: i++ });
        if (call.request.delay_ms) setTimeout(next, call.request.delay_ms);
        else next();
      };
      next();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      observe(call);
      const got: string[] = [];
      call.on('data', (r: EchoRequest) => {
        got.push(r.message ?? '');
        s.received.push(r.message ?? '');
      });
      call.on('end', () => cb(null, { message: got.join(','), payload: Buffer.alloc(0), index: got.length }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      observe(call);
      let i = 0;
      call.on('data', (r: EchoRequest) => {
        s.received.push(r.message ?? '');
        call.write({ message: r.message ?? '', payload: Buffer.alloc(0), index: i++ });
      });
      call.on('end', () => call.end());
    },
  });
  // grpc.health.v1.Health/Check by hand: HealthCheckResponse { status: SERVING (1) | NOT_SERVING (2) }.
  const raw = (b: Buffer) => b;
  server.addService(
    { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    {
      Check(_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
        s.healthChecks++;
        cb(null, Buffer.from([0x08, s.health === 'SERVING' ? 1 : 2]));
      },
    },
  );
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  (s as { port: number }).port = port;
  s.close = () => new Promise<void>((r) => server.tryShutdown(() => r())).then(() => server.forceShutdown());
  return s;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type EchoClient = any;

/**
 * A client of `target` (host:port); `tls` for h2 over TLS trusting `ca`; `authority`: the
 * :authority to send (a sidecar's outbound listener routes by it: the service name).
 */
export function echoClient(target: string, tls?: { ca: Buffer | string; servername?: string }, authority?: string): EchoClient {
  const creds = tls ? grpc.credentials.createSsl(Buffer.from(tls.ca)) : grpc.credentials.createInsecure();
  return new pkg.meshgate.test.Echo(target, creds, {
    ...LIMITS,
    ...(tls?.servername ? { 'grpc.ssl_target_name_override': tls.servername } : {}),
    ...(authority ? { 'grpc.default_authority': authority } : {}),
  });
}

export interface CallOutcome<T> {
  reply?: T;
  error?: grpc.ServiceError;
  headers?: Record<string, unknown>;
  trailers?: Record<string, unknown>;
}

/** A unary call, resolving with its reply or error, its headers (initial metadata) and trailers. */
export function unary(client: EchoClient, req: EchoRequest, opts: { deadlineMs?: number; metadata?: Record<string, string> } = {}): Promise<CallOutcome<EchoReply>> {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const out: CallOutcome<EchoReply> = {};
    const call = client.Unary(req, md, opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {}, (err: grpc.ServiceError | null, reply: EchoReply) => {
      if (err) out.error = err;
      else out.reply = reply;
      // 'status' follows the callback: wait for it so trailers are there.
      setImmediate(() => resolve(out));
    });
    call.on('metadata', (m: grpc.Metadata) => (out.headers = m.getMap()));
    call.on('status', (st: grpc.StatusObject) => (out.trailers = st.metadata.getMap()));
  });
}

export { grpc };
