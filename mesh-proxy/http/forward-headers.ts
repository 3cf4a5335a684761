// Request and response header rewriting for one proxy hop (RFC 9110 §7.6.1): hop-by-hop fields are
// dropped, including any the Connection field names; request ids and trace context are kept or
// created; the edge adds x-forwarded-*. Names are compared case-insensitively without lowercasing
// every header: only names whose length matches a field of interest are lowercased.
import { parseGrpcTimeout, parseTimeoutMs, TIMEOUT_HEADER } from './deadline.ts';
import { isValidRequestId, newRequestId, nextTraceparent } from './ids.ts';
import { GrpcKind, grpcKindOf } from './grpc.ts';

/** Fields that never cross a hop. `expect` too: the listener already answered 100-continue. */
export function hopByHop(lower: string): boolean {
  switch (lower) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'te':
    case 'transfer-encoding':
    case 'upgrade':
    case 'trailer':
    case 'proxy-authorization':
    case 'proxy-authenticate':
    case 'expect':
      return true;
    default:
      return false;
  }
}

const INTEREST = new Set([2, 6, 7, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21]); // 12: content-type too

/** Set by an mTLS inbound hop from the verified certificate only; a copy arriving from anywhere is dropped. */
export const CLIENT_ID_HEADER = 'x-meshgate-client-id';

/** What a request's headers told the proxy, and the list to send upstream. */
export interface ForwardedRequest {
  headers: string[];
  requestId: string;
  hasBody: boolean;
  /** Content-Length as sent, or -1. */
  contentLength: number;
  /** The Host header as received ('' when absent). */
  host: string;
  /** The caller's remaining deadline in ms (x-meshgate-timeout-ms or grpc-timeout), or -1. */
  callerTimeoutMs: number;
  /** Set when the request must be refused with 400 (e.g. two Host fields, RFC 9112 §3.2). */
  badRequest: string | undefined;
  /** Where in `headers` this hop writes the remaining deadline before each try. */
  timeoutSlot: number;
  /** Likewise for grpc-timeout, when the caller sent one; -1 otherwise. */
  grpcTimeoutSlot: number;
  /** gRPC or gRPC-Web, by content-type: errors then go back as gRPC statuses. */
  grpc: GrpcKind;
  /** Where the content-type sits in `headers` (a gRPC-Web translation rewrites it); -1 when absent. */
  contentTypeSlot: number;
}

/**
 * Fills `out` from a request's raw headers. `edgeClientIp` is set only at the edge, which states
 * x-forwarded-for/-proto/-host; inside the mesh those pass through untouched.
 */
export function forwardRequestHeaders(raw: string[], edgeClientIp: string | null, proto: 'http' | 'https', out: ForwardedRequest): void {
  const edge = edgeClientIp !== null;
  out.badRequest = undefined;
  const headers: string[] = [];
  let requestId: string | undefined;
  let traceparent: string | undefined;
  let xff: string | undefined;
  let host: string | undefined;
  let hasBody = false;
  let connectionTokens: string | undefined;
  let callerTimeoutMs = -1;
  let contentLength = -1;
  let grpc = false;
  let grpcKind: GrpcKind = GrpcKind.None;
  let contentTypeSlot = -1;
  let authority: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    // HTTP/2 pseudo-headers (RFC 9113 §8.3) never cross a hop; :authority stands for Host.
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (INTEREST.has(name.length)) {
      const lower = name.toLowerCase();
      if (hopByHop(lower)) {
        if (lower === 'transfer-encoding') hasBody = true;
        else if (lower === 'connection') connectionTokens = connectionTokens ? `${connectionTokens},${value}` : value;
        continue;
      }
      switch (lower) {
        case 'x-request-id':
          if (requestId === undefined && isValidRequestId(value)) requestId = value;
          continue;
        case 'traceparent':
          traceparent = value;
          continue;
        case CLIENT_ID_HEADER:
          continue;
        case TIMEOUT_HEADER:
        case 'grpc-timeout': {
          // Re-stated with what is left when this hop sends the request.
          const ms = lower === TIMEOUT_HEADER ? parseTimeoutMs(value) : parseGrpcTimeout(value);
          if (ms !== undefined && (callerTimeoutMs < 0 || ms < callerTimeoutMs)) callerTimeoutMs = ms;
          if (lower === 'grpc-timeout') grpc = true;
          continue;
        }
        case 'x-forwarded-for':
          if (edge) {
            xff = xff === undefined ? value : `${xff}, ${value}`;
            continue;
          }
          break;
        case 'x-forwarded-proto':
        case 'x-forwarded-host':
          if (edge) continue; // the edge states these itself
          break;
        case 'content-length':
          contentLength = Number(value);
          if (contentLength !== 0) hasBody = true;
          break;
        case 'content-type':
          grpcKind = grpcKindOf(value);
          contentTypeSlot = headers.length + 1;
          break;
      }
    } else if (name.length === 4 && name.toLowerCase() === 'host') {
      if (host !== undefined) out.badRequest = 'the request has more than one Host header';
      host = value;
    }
    headers.push(name, value);
  }
  if (connectionTokens !== undefined) dropConnectionNamed(headers, connectionTokens);
  // RFC 9113 §8.3.1: with both, :authority wins; an HTTP/1.1 upstream needs it as Host.
  if (authority !== undefined) {
    if (host === undefined) headers.push('host', authority);
    else if (host !== authority) {
      for (let i = 0; i < headers.length; i += 2) if (headers[i].length === 4 && headers[i].toLowerCase() === 'host') headers[i + 1] = authority;
    }
    host = authority;
  }
  if (requestId === undefined) requestId = newRequestId();
  headers.push('x-request-id', requestId, 'traceparent', nextTraceparent(traceparent), TIMEOUT_HEADER, '');
  out.timeoutSlot = headers.length - 1;
  if (grpc) {
    headers.push('grpc-timeout', '');
    out.grpcTimeoutSlot = headers.length - 1;
  } else out.grpcTimeoutSlot = -1;
  // gRPC servers may insist on it (PROTOCOL-HTTP2.md); as a hop-by-hop field it was dropped above.
  if (grpcKind === GrpcKind.Grpc) headers.push('te', 'trailers');
  out.grpc = grpcKind;
  out.contentTypeSlot = contentTypeSlot;
  out.callerTimeoutMs = callerTimeoutMs;
  if (edge) {
    headers.push('x-forwarded-for', xff === undefined ? edgeClientIp : `${xff}, ${edgeClientIp}`, 'x-forwarded-proto', proto);
    if (host !== undefined) headers.push('x-forwarded-host', host);
  }
  out.headers = headers;
  out.requestId = requestId;
  out.hasBody = hasBody;
  out.contentLength = contentLength;
  out.host = host ?? '';
}

const BENIGN_TOKENS = new Set(['keep-alive', 'close', 'upgrade']);

/** Connection: may name further hop-by-hop fields (RFC 9110 §7.6.1); rare, so done in a second pass. */
function dropConnectionNamed(headers: string[], tokens: string): void {
  // Nearly always the value is just "keep-alive" or "close": nothing further to drop.
  if (tokens.length <= 10 && BENIGN_TOKENS.has(tokens.toLowerCase())) return;
  const named = new Set<string>();
  for (const t of tokens.split(',')) {
    const n = t.trim().toLowerCase();
    if (n && !BENIGN_TOKENS.has(n)) named.add(n);
  }
  if (named.size === 0) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (named.has(headers[i].toLowerCase())) headers.splice(i, 2);
  }
}

/**
 * The upstream's response headers as Node's writeHead() takes them (a flat [name, value, ...]
 * list), without hop-by-hop fields. Framing is Node's job on the client side.
 */
export function forwardResponseHeaders(raw: readonly string[], dropRequestId = false): string[] {
  const out: string[] = [];
  let connectionTokens: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (INTEREST.has(name.length)) {
      const lower = name.toLowerCase();
      // The edge states the request id itself; an upstream's copy would make it appear twice.
      if (dropRequestId && lower === 'x-request-id') continue;
      if (hopByHop(lower)) {
        if (lower === 'connection') {
          // Several Connection lines each name fields to drop (RFC 9110 §5.3: they combine).
          const v = raw[i + 1];
          connectionTokens = connectionTokens === undefined ? v : `${connectionTokens},${v}`;
        }
        continue;
      }
    }
    out.push(name, raw[i + 1]);
  }
  if (connectionTokens !== undefined) dropConnectionNamed(out, connectionTokens);
  return out;
}
