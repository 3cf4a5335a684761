// Request ids and W3C trace context (https://www.w3.org/TR/trace-context/).
import { randomFillSync, randomUUID } from 'node:crypto';

// Random bytes drawn in blocks: one syscall per 256 trace ids instead of one per request.
const pool = Buffer.allocUnsafe(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return s;
}

export function newRequestId(): string {
  return randomUUID();
}

const REQUEST_ID_RE = /^[\w.:\-/+=]{1,128}$/;
/** A caller's id is kept when it is plausible; anything else is replaced rather than forwarded. */
export function isValidRequestId(id: string): boolean {
  return REQUEST_ID_RE.test(id);
}

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-([0-9a-f]{2})$/;
const ZERO_TRACE = '00000000000000000000000000000000';

/**
 * This hop's traceparent: the caller's trace id and flags with a new parent id (this proxy's span),
 * or a new trace when the caller sent none or an invalid one.
 */
export function nextTraceparent(incoming: string | undefined): string {
  if (incoming !== undefined) {
    const m = TRACEPARENT_RE.exec(incoming);
    if (m !== null && m[1] !== ZERO_TRACE) return `00-${m[1]}-${randomHex(8)}-${m[2]}`;
  }
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}
