// grpc-web-text request bodies are base64. A client may send several independently padded
// segments back to back (one per message), split at any byte: input is taken in 4-character
// quanta, each decoded on its own, so padding may end any quantum. CR/LF are ignored.
import { Transform, type TransformCallback } from 'node:stream';
import { GrpcWebError } from './errors.ts';

const VALID = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') VALID[c.charCodeAt(0)] = 1;

export class Base64RequestDecoder extends Transform {
  /** Characters not yet forming a whole quantum (0–3). */
  #carry = '';
  /** Characters seen, for error positions. */
  #offset = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let text = '';
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 13 || c === 10) continue;
      if (VALID[c] !== 1) {
        done(new GrpcWebError('GRPC_WEB_BAD_BASE64', `invalid base64 character 0x${c.toString(16).padStart(2, '0')} at offset ${this.#offset + i}`));
        return;
      }
      text += String.fromCharCode(c);
    }
    this.#offset += chunk.length;
    const all = this.#carry + text;
    const whole = all.length - (all.length % 4);
    this.#carry = all.slice(whole);
    if (whole === 0) {
      done();
      return;
    }
    try {
      done(null, decodeQuanta(all.slice(0, whole), this.#offset));
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.#carry.length !== 0) {
      done(new GrpcWebError('GRPC_WEB_BAD_BASE64', `the base64 body ends with an incomplete group of ${this.#carry.length} character(s)`));
      return;
    }
    done();
  }
}

/** Decodes whole quanta; "=" may only end a quantum ("xx==" or "xxx="). */
function decodeQuanta(s: string, endOffset: number): Buffer {
  const pad = s.indexOf('=');
  if (pad < 0) return Buffer.from(s, 'base64');
  const parts: Buffer[] = [];
  let start = 0;
  for (let q = 0; q < s.length; q += 4) {
    const quantum = s.slice(q, q + 4);
    const eq = quantum.indexOf('=');
    if (eq < 0) continue;
    if (eq < 2 || (eq === 2 && quantum[3] !== '=')) {
      throw new GrpcWebError('GRPC_WEB_BAD_BASE64', `misplaced base64 padding near offset ${endOffset - s.length + q}`);
    }
    parts.push(Buffer.from(s.slice(start, q + 4), 'base64'));
    start = q + 4;
  }
  if (start < s.length) parts.push(Buffer.from(s.slice(start), 'base64'));
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
