// What meshgate's HTTP/1.1 server refuses before a request reaches the proxy (as node:http does,
// with meshgate's JSON errors): the checks on a request's head, and the reason phrases of refusals.
import { STATUS_CODES } from 'node:http';
import { MAX_HEADER_SIZE } from '../client/h1-wire.ts';
import { dateHeader, type H1Request } from './h1-downstream.ts';


const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/**
 * What node:http refuses before a request reaches a handler: an HTTP/1.1 request without Host
 * (RFC 9112 §3.2), an Expect other than 100-continue (RFC 9110 §10.1.1), and CONNECT, which a
 * reverse proxy does not tunnel. Also notes whether the client waits for 100 Continue.
 */
export function checkHead(req: H1Request): Refusal | undefined {
  if (req.method === '') return { status: 501, code: 'NOT_IMPLEMENTED', message: 'the request method is not supported' };
  if (req.method === 'CONNECT') return { status: 405, code: 'METHOD_NOT_ALLOWED', message: 'CONNECT is not supported: meshgate is a reverse proxy' };
  if (req.httpVersionMajor !== 1) return { status: 505, code: 'HTTP_VERSION_NOT_SUPPORTED', message: `HTTP/${req.httpVersionMajor}.${req.httpVersionMinor} is not supported` };
  const raw = req.rawHeaders;
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 4) {
      if (n.toLowerCase() === 'host') host = true;
    } else if (n.length === 6 && req.httpVersionMinor >= 1 && n.toLowerCase() === 'expect') {
      // As node:http: only an HTTP/1.1 client's Expect counts, and 100-continue as a token of it.
      if (!CONTINUE.test(raw[i + 1])) return { status: 417, code: 'EXPECTATION_FAILED', message: `Expect: ${raw[i + 1]} is not supported (only 100-continue)` };
      req.expectsContinue = true;
    }
  }
  if (!host && req.httpVersionMinor >= 1) return { status: 400, code: 'BAD_REQUEST', message: 'an HTTP/1.1 request must carry a Host header' };
  return undefined;
}

/** What llhttp's error code means for the client: a head too large, or bytes that make no sense. */
export function parseErrorRefusal(code: string, inBody: boolean): Refusal {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, code: 'HEADERS_TOO_LARGE', message: `the request head is larger than ${MAX_HEADER_SIZE} bytes` };
  return { status: 400, code: 'BAD_REQUEST', message: inBody ? `malformed request body (${code})` : `malformed HTTP/1.1 request (${code})` };
}

/** A refusal on the wire: meshgate's JSON error, and the connection closes after it. */
export function refusalText(status: number, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-meshgate-error: ${code}\r\n${dateHeader()}connection: close\r\n\r\n${body}`
  );
}
