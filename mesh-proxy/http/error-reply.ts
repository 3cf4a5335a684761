// Replies meshgate writes itself: mesh errors with the JSON body {"error":{"code","message","requestId"}},
// and plugins' local replies (a 401, a 429, a CORS preflight's 204).
import type { ServerHttp2Stream } from 'node:http2';
import { encodeGrpcMessage } from './grpc.ts';
import { H2Response, type DownstreamResponse } from './h2-downstream.ts';

export const ERROR_HEADER = 'x-meshgate-error';
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Answers with meshgate's JSON error body. `extra`: more headers as a flat [name, value, …] list
 * (a plugin's RateLimit-* or CORS headers).
 */
export function sendError(
  res: DownstreamResponse, status: number, code: string, message: string, requestId: string,
  closeConnection = false, extra?: readonly string[],
): void {
  sendLocalReply(res, status, code, JSON.stringify({ error: { code, message, requestId } }), JSON_TYPE, requestId, closeConnection, extra);
}

/** A local reply with a body of its own; `code` (when it is an error) is stated in x-meshgate-error. */
export function sendLocalReply(
  res: DownstreamResponse, status: number, code: string | undefined, body: string | Buffer, contentType: string | undefined,
  requestId: string, closeConnection: boolean, extra?: readonly string[],
): void {
  if (res.headersSent) {
    // Too late for a clean reply: the client must see a broken response, not a truncated "success".
    res.destroy();
    return;
  }
  const headers: Record<string, string | number | string[]> = { 'cache-control': 'no-store', 'x-request-id': requestId };
  // RFC 9110 §8.6: no Content-Length on a 204 (a CORS preflight's answer) or a 304.
  if (status !== 204 && status !== 304) headers['content-length'] = Buffer.byteLength(body);
  if (contentType !== undefined) headers['content-type'] = contentType;
  // Says the reply came from a meshgate proxy, not the app (cf. linkerd's l5d-proxy-error), so a
  // proxy upstream of this one can tell a propagated deadline from an endpoint's failure.
  if (code !== undefined) headers[ERROR_HEADER] = code;
  if (closeConnection) headers.connection = 'close';
  if (extra !== undefined) {
    for (let i = 0; i < extra.length; i += 2) {
      const name = extra[i].toLowerCase();
      const prev = headers[name];
      // Repeated fields (vary, set-cookie) accumulate; a plugin's content-type replaces ours.
      if (prev === undefined || name === 'content-type' || name === 'cache-control') headers[name] = extra[i + 1];
      else if (name !== 'content-length') headers[name] = Array.isArray(prev) ? [...prev, extra[i + 1]] : [String(prev), extra[i + 1]];
    }
  }
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * A gRPC error as a trailers-only reply: HTTP 200 whose one HEADERS frame carries grpc-status and
 * grpc-message and ends the stream (over HTTP/1.1, for gRPC-Web, headers and an empty body). After
 * the response has started the stream is reset instead: the client sees the call fail, never a
 * truncated success.
 */
export function sendGrpcError(
  res: DownstreamResponse, h2: boolean, contentType: string, grpcStatus: number, code: string, message: string, requestId: string,
  extra?: readonly string[],
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number | string[]> = {
    'content-type': contentType,
    'grpc-status': String(grpcStatus),
    'grpc-message': encodeGrpcMessage(message),
    [ERROR_HEADER]: code,
    'x-request-id': requestId,
  };
  if (extra !== undefined) {
    for (let i = 0; i < extra.length; i += 2) {
      const name = extra[i].toLowerCase();
      if (name === 'content-type' || name === 'content-length' || name.startsWith('grpc-')) continue;
      const prev = headers[name];
      headers[name] = prev === undefined ? extra[i + 1] : Array.isArray(prev) ? [...prev, extra[i + 1]] : [String(prev), extra[i + 1]];
    }
  }
  if (res instanceof H2Response) {
    res.respondAndEnd(200, headers);
    return;
  }
  const stream = h2 ? (res as unknown as { stream?: ServerHttp2Stream }).stream : undefined;
  if (stream !== undefined) {
    if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 200, ...headers }, { endStream: true });
    return;
  }
  headers['content-length'] = 0;
  res.writeHead(200, headers);
  res.end();
}
