// The JSON body every locally generated error carries: {"error":{"code","message","requestId"}}.
import type { ServerResponse } from 'node:http';
import { ERROR_KINDS, type MeshErrorCode } from '../client/errors.ts';

export const ERROR_HEADER = 'x-meshgate-error';

export function sendError(res: ServerResponse, code: MeshErrorCode, message: string, requestId: string, closeConnection = false): void {
  if (res.headersSent) {
    // Too late for a clean reply: the client must see a broken response, not a truncated "success".
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message, requestId } });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    // Says the reply came from a meshgate proxy, not the app (cf. linkerd's l5d-proxy-error), so a
    // proxy upstream of this one can tell a propagated deadline from an endpoint's failure.
    [ERROR_HEADER]: code,
  };
  if (closeConnection) headers.connection = 'close';
  res.writeHead(ERROR_KINDS[code].status, headers);
  res.end(body);
}
