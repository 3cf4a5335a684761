// The response half of gRPC-Web: the upstream's gRPC frames pass through (text mode: as one
// continuous base64 stream, carrying the 0–2 bytes that do not fill a 3-byte group to the next
// chunk), and the trailers become the body's last frame: flag 0x80, a 4-byte length, then
// "name: value\r\n" lines (PROTOCOL-WEB.md).
import type { GrpcWebMode } from './content-type.ts';

type Trailers = Record<string, string | string[] | undefined>;

const EMPTY = Buffer.alloc(0);

/** The trailers as a gRPC-Web trailer frame. */
export function trailerFrame(trailers: Trailers): Buffer {
  let text = '';
  for (const name in trailers) {
    const v = trailers[name];
    if (v === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    const lower = name.toLowerCase();
    for (const one of Array.isArray(v) ? v : [v]) text += `${lower}: ${one}\r\n`;
  }
  const body = Buffer.from(text, 'latin1');
  const frame = Buffer.alloc(5 + body.length);
  frame[0] = 0x80;
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

export class GrpcWebResponseEncoder {
  readonly #text: boolean;
  #carry: Buffer = EMPTY;

  constructor(mode: GrpcWebMode) {
    this.#text = mode === 'text';
  }

  data(chunk: Buffer): Buffer {
    if (!this.#text) return chunk;
    const all = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const whole = all.length - (all.length % 3);
    this.#carry = whole === all.length ? EMPTY : Buffer.from(all.subarray(whole));
    return whole === 0 ? EMPTY : Buffer.from(all.subarray(0, whole).toString('base64'), 'latin1');
  }

  end(trailers: Trailers): Buffer {
    const frame = trailerFrame(trailers);
    if (!this.#text) return frame;
    const rest = this.#carry.length === 0 ? frame : Buffer.concat([this.#carry, frame]);
    this.#carry = EMPTY;
    return Buffer.from(rest.toString('base64'), 'latin1');
  }
}

/** A gRPC-Web response body taken apart (tests, tools): its messages and its trailers. */
export function decodeGrpcWebResponse(body: Buffer, mode: GrpcWebMode): { messages: Buffer[]; trailers: Record<string, string> } {
  const bytes = mode === 'text' ? decodeSegments(body.toString('latin1')) : body;
  const messages: Buffer[] = [];
  let trailers: Record<string, string> = {};
  let i = 0;
  while (i + 5 <= bytes.length) {
    const flag = bytes[i];
    const len = bytes.readUInt32BE(i + 1);
    const payload = bytes.subarray(i + 5, i + 5 + len);
    if (payload.length < len) throw new Error(`truncated frame at byte ${i}`);
    if (flag & 0x80) trailers = parseTrailerFrame(payload);
    else messages.push(Buffer.from(payload));
    i += 5 + len;
  }
  if (i !== bytes.length) throw new Error(`${bytes.length - i} trailing byte(s) after the last frame`);
  return { messages, trailers };
}

/** "name: value\r\n" lines → an object (later values of a name are joined with ", "). */
export function parseTrailerFrame(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of payload.toString('latin1').split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/** Base64 that may hold several padded segments back to back. */
function decodeSegments(s: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let q = 0; q + 4 <= s.length; q += 4) {
    if (s[q + 3] === '=') {
      parts.push(Buffer.from(s.slice(start, q + 4), 'base64'));
      start = q + 4;
    }
  }
  if (start < s.length) parts.push(Buffer.from(s.slice(start), 'base64'));
  return Buffer.concat(parts);
}
