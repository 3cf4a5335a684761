// Checks the gRPC length-prefixed framing of a request body on its way through, unchanged: each
// message is a flag byte (0, or 1 = compressed), a 4-byte big-endian length, then the payload. A
// malformed body is refused before the upstream has to make sense of it.
import { Transform, type TransformCallback } from 'node:stream';
import { GrpcWebError } from './errors.ts';

export class FrameChecker extends Transform {
  readonly #max: number;
  /** Header bytes of the current frame seen so far (0–5). */
  #headerSeen = 0;
  readonly #header = Buffer.alloc(5);
  /** Payload bytes still expected in the current frame. */
  #remaining = 0;
  #offset = 0;
  #frameStart = 0;

  constructor(maxMessageBytes: number) {
    super();
    this.#max = maxMessageBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= take;
        i += take;
        continue;
      }
      if (this.#headerSeen === 0) this.#frameStart = this.#offset + i;
      this.#header[this.#headerSeen++] = chunk[i++];
      if (this.#headerSeen < 5) continue;
      this.#headerSeen = 0;
      const flag = this.#header[0];
      if (flag !== 0 && flag !== 1) {
        done(new GrpcWebError('GRPC_WEB_BAD_FRAME', `bad frame flag 0x${flag.toString(16).padStart(2, '0')} at byte ${this.#frameStart} (a request message has 0x00 or 0x01)`));
        return;
      }
      const length = this.#header.readUInt32BE(1);
      if (length > this.#max) {
        done(new GrpcWebError('GRPC_WEB_MESSAGE_TOO_LARGE', `a ${length}-byte message at byte ${this.#frameStart} is over the ${this.#max}-byte limit`));
        return;
      }
      this.#remaining = length;
    }
    this.#offset += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.#headerSeen !== 0 || this.#remaining !== 0) {
      const missing = this.#headerSeen !== 0 ? `${5 - this.#headerSeen} header byte(s)` : `${this.#remaining} payload byte(s)`;
      done(new GrpcWebError('GRPC_WEB_BAD_FRAME', `the body ends inside the frame starting at byte ${this.#frameStart} (${missing} missing)`));
      return;
    }
    done();
  }
}
