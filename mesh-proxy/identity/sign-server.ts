// `meshgate ca serve`: the CA's signing endpoint. HTTPS with a certificate the CA issues to itself
// (the reserved signer identity, which it never issues to a workload). POST /v1/sign with
// `Authorization: Bearer <bootstrap token>` and JSON { csr, service, namespace, ttl } returns
// { certChain, root, identity, serial, notAfter }. The token is compared in constant time; the CSR is
// checked without forge (csr.ts); lifetimes are capped. Bad input is a JSON error, never a crash.
import { createHash, timingSafeEqual } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DURATION_PATTERN, parseDuration } from '../../config/duration.ts';
import type { Logger } from '../observe/log.ts';
import { issueLeaf, signLeaf, type CaFiles } from './ca.ts';
import { CsrError, forgePublicKey, readCsr } from './csr.ts';
import { SIGNER_NAMESPACE, SIGNER_SERVICE } from './spiffe.ts';

export const MAX_TTL_MS = 7 * 86_400_000;
const DEFAULT_TTL = '24h';
const MAX_BODY_BYTES = 64 * 1024;
const SERVER_CERT_TTL_MS = 7 * 86_400_000;
const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;
const DURATION = new RegExp(DURATION_PATTERN);

export interface SignServerOptions {
  ca: CaFiles;
  token: string;
  address: string;
  port: number;
  log: Logger;
  /** Longest lifetime handed out (default 7 days). */
  maxTtlMs?: number;
}

export interface SignServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

class RequestError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function startSignServer(o: SignServerOptions): Promise<SignServer> {
  const maxTtlMs = o.maxTtlMs ?? MAX_TTL_MS;
  // Hashing both sides gives equal lengths, so timingSafeEqual leaks neither the token nor its length.
  const expected = digest(`Bearer ${o.token}`);
  const serverCert = () => {
    const leaf = issueLeaf(o.ca, { service: SIGNER_SERVICE, namespace: SIGNER_NAMESPACE, ttlMs: SERVER_CERT_TTL_MS });
    return { key: leaf.keyPem, cert: leaf.certChainPem };
  };
  const server = https.createServer({ ...serverCert(), minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      const e = err instanceof RequestError ? err : new RequestError(500, 'INTERNAL', 'internal error');
      if (e.status === 500) o.log.error({ err: err.message }, 'signing failed');
      reply(res, e.status, { error: { code: e.code, message: e.message } });
    });
  });
  // Its own certificate is renewed well before it expires.
  const renew = setInterval(() => server.setSecureContext({ ...serverCert(), minVersion: 'TLSv1.2' }), SERVER_CERT_TTL_MS / 3);
  renew.unref();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url !== '/v1/sign') throw new RequestError(404, 'NOT_FOUND', 'the only endpoint is POST /v1/sign');
    if (req.method !== 'POST') throw new RequestError(405, 'METHOD_NOT_ALLOWED', 'use POST');
    if (!timingSafeEqual(digest(req.headers.authorization ?? ''), expected)) {
      req.resume();
      o.log.warn({ client: req.socket.remoteAddress }, 'signing request with a wrong bootstrap token');
      throw new RequestError(401, 'UNAUTHORIZED', 'a valid bootstrap token is required');
    }
    const body = await readJson(req);
    const { csr, service, namespace = 'default', ttl = DEFAULT_TTL } = body as Record<string, unknown>;
    if (typeof service !== 'string' || !SEGMENT.test(service)) throw new RequestError(400, 'BAD_REQUEST', 'service must be a name of letters, digits, ".", "_" or "-"');
    if (typeof namespace !== 'string' || !SEGMENT.test(namespace)) throw new RequestError(400, 'BAD_REQUEST', 'namespace must be a name of letters, digits, ".", "_" or "-"');
    if (namespace === SIGNER_NAMESPACE) throw new RequestError(403, 'FORBIDDEN', `namespace ${SIGNER_NAMESPACE} is reserved for the signer`);
    if (typeof ttl !== 'string' || !DURATION.test(ttl)) throw new RequestError(400, 'BAD_REQUEST', 'ttl must be a duration such as 1h or 24h');
    const ttlMs = Math.min(parseDuration(ttl), maxTtlMs);
    if (ttlMs < 1000) throw new RequestError(400, 'BAD_REQUEST', 'ttl must be at least 1s');
    if (typeof csr !== 'string') throw new RequestError(400, 'BAD_CSR', 'csr must be a PEM certificate request');
    let key;
    try {
      key = readCsr(csr);
    } catch (err) {
      if (err instanceof CsrError) throw new RequestError(400, 'BAD_CSR', err.message);
      throw err;
    }
    const leaf = signLeaf(o.ca, forgePublicKey(key), { service, namespace, ttlMs });
    o.log.info({ identity: leaf.identity, serial: leaf.serial, notAfter: leaf.notAfter.toISOString(), client: req.socket.remoteAddress }, 'issued a workload certificate');
    reply(res, 200, { certChain: leaf.certChainPem, root: o.ca.rootCert, identity: leaf.identity, serial: leaf.serial, notAfter: leaf.notAfter.toISOString() });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${o.address}:${o.port} for the signing endpoint: ${err.code ?? err.message}`)));
    server.listen(o.port, o.address, () => resolve());
  });
  server.on('error', (err) => o.log.error({ err: err.message }, 'signing endpoint error'));
  return {
    address: server.address() as AddressInfo,
    close: async () => {
      clearInterval(renew);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function readJson(req: IncomingMessage): Promise<object> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new RequestError(413, 'TOO_LARGE', `the request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(c);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RequestError(400, 'BAD_REQUEST', 'the body must be JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RequestError(400, 'BAD_REQUEST', 'the body must be a JSON object');
  return v;
}

function reply(res: ServerResponse, status: number, body: object): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
