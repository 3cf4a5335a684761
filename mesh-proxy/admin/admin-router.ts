// The admin API's HTTP layer on node:http: a dozen routes (exact segments and `:name` parameters),
// JSON bodies, meshgate's JSON errors. It replaced fastify here because a sidecar runs one per
// pod: fastify and its schema compilers held 10–15 MB of every sidecar's memory for these routes
// (README, design notes). Handlers return the body, or `reply.code(n).send(body)`.
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observe/log.ts';

/** As fastify's default: an admin request body is a small JSON document. */
const MAX_BODY_BYTES = 1 << 20;

export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly params: Readonly<Record<string, string>>;
  /** The parsed JSON body (a string for text/plain; undefined when there is none). */
  readonly body: unknown;
}

export class AdminReply {
  statusCode = 200;
  readonly headers: Record<string, string> = {};
  body: unknown = undefined;

  code(status: number): this {
    this.statusCode = status;
    return this;
  }

  header(name: string, value: string): this {
    this.headers[name.toLowerCase()] = value;
    return this;
  }

  send(body: unknown): this {
    this.body = body;
    return this;
  }

  /** meshgate's JSON error: `{"error": {"code", "message"}}` with this status. */
  fail(status: number, code: string, message: string): this {
    return this.code(status).send({ error: { code, message } });
  }
}

export type AdminHandler = (req: AdminRequest, reply: AdminReply) => unknown;
/** Runs before the body is read and before routing: false when it answered itself (e.g. 401). */
export type AdminGuard = (req: AdminRequest, reply: AdminReply) => boolean;

interface Route {
  readonly method: string;
  readonly segments: readonly string[];
  readonly handler: AdminHandler;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const UNREADABLE = Symbol('unreadable body');

export class AdminRouter {
  readonly server: http.Server;
  readonly #routes: Route[] = [];
  #guard: AdminGuard | undefined;
  readonly #log: Logger | undefined;

  constructor(log?: Logger) {
    this.#log = log;
    this.server = http.createServer((req, res) => void this.#serve(req, res));
  }

  guard(g: AdminGuard): void {
    this.#guard = g;
  }

  get(path: string, h: AdminHandler): void {
    this.#add('GET', path, h);
  }
  post(path: string, h: AdminHandler): void {
    this.#add('POST', path, h);
  }
  put(path: string, h: AdminHandler): void {
    this.#add('PUT', path, h);
  }
  delete(path: string, h: AdminHandler): void {
    this.#add('DELETE', path, h);
  }

  listen(opts: { host: string; port: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(opts.port, opts.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops listening; idle keep-alive connections close now, requests in flight finish. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  #add(method: string, path: string, handler: AdminHandler): void {
    this.#routes.push({ method, segments: path.split('/').slice(1), handler });
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = new AdminReply();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    try {
      // The guard sees the request before its body is read: an unauthorised caller costs no body.
      if (this.#guard !== undefined && !this.#guard({ method, path, headers: req.headers, params: NO_PARAMS, body: undefined }, reply)) {
        req.resume();
        return write(res, req, reply);
      }
      const body = await readBody(req, reply);
      if (body === UNREADABLE) return write(res, req, reply);
      const parts = path.split('/').slice(1);
      let allowed = '';
      for (const r of this.#routes) {
        const params = match(r.segments, parts);
        if (params === undefined) continue;
        if (r.method !== method) {
          allowed += allowed === '' ? r.method : `, ${r.method}`;
          continue;
        }
        const out = await r.handler({ method, path, headers: req.headers, params, body }, reply);
        if (out !== reply) reply.body = out;
        return write(res, req, reply);
      }
      if (allowed !== '') reply.header('allow', allowed).fail(405, 'METHOD_NOT_ALLOWED', `${path} takes ${allowed}, not ${req.method}`);
      else reply.fail(404, 'NOT_FOUND', `the admin API has no route ${req.method} ${path}`);
      write(res, req, reply);
    } catch (err) {
      this.#log?.error({ err, method: req.method, path }, 'admin request failed');
      if (res.headersSent) res.destroy();
      else write(res, req, new AdminReply().fail(500, 'INTERNAL', (err as Error).message));
    }
  }
}

/** The route's parameters when `parts` matches its segments, else undefined. */
function match(segments: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  let params: Record<string, string> | undefined;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.startsWith(':')) {
      if (parts[i] === '') return undefined;
      let v: string;
      try {
        v = decodeURIComponent(parts[i]);
      } catch {
        return undefined;
      }
      (params ??= {})[s.slice(1)] = v;
    } else if (s !== parts[i]) return undefined;
  }
  return params ?? {};
}

/** The request body: JSON parsed, text as a string; UNREADABLE with a 400/413/415 on the reply. */
async function readBody(req: IncomingMessage, reply: AdminReply): Promise<unknown> {
  // A declared length over the limit is refused before a byte of the body is read.
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return tooLarge(reply);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return tooLarge(reply);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(text);
    } catch (err) {
      reply.fail(400, 'INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`);
      return UNREADABLE;
    }
  }
  if (type === 'text/plain') return text;
  reply.fail(415, 'UNSUPPORTED_MEDIA_TYPE', `send the body as application/json (got ${type || 'no content-type'})`);
  return UNREADABLE;
}

/** The rest of the body is not read: the connection closes after the answer. */
function tooLarge(reply: AdminReply): typeof UNREADABLE {
  reply.header('connection', 'close').fail(413, 'PAYLOAD_TOO_LARGE', `an admin request body is at most ${MAX_BODY_BYTES} bytes`);
  return UNREADABLE;
}

function write(res: ServerResponse, req: IncomingMessage, reply: AdminReply): void {
  const b = reply.body;
  let payload: string | Buffer;
  if (typeof b === 'string') {
    payload = b;
    reply.headers['content-type'] ??= 'text/plain; charset=utf-8';
  } else if (Buffer.isBuffer(b)) {
    payload = b;
    reply.headers['content-type'] ??= 'application/octet-stream';
  } else {
    payload = JSON.stringify(b ?? null);
    reply.headers['content-type'] ??= 'application/json; charset=utf-8';
  }
  reply.headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(reply.statusCode, reply.headers);
  res.end(req.method === 'HEAD' ? undefined : payload);
}
