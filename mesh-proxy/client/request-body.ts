// Reads a request body that may need replaying on a retry into memory. Only bodies with a known
// Content-Length within the service's maxBodyBytes come here; the rest stream straight through.
import type { Exchange } from './exchange.ts';

export interface BodyConsumer {
  bodyReady(ex: Exchange): void;
}

export function readBody(ex: Exchange, consumer: BodyConsumer): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const req = ex.requestStream;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > ex.contentLength) {
      // llhttp enforces Content-Length, so this is a safeguard: answer first, then cut.
      ex.fail('BAD_REQUEST', 'the request body is longer than its Content-Length');
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.once('end', () => {
    ex.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    consumer.bodyReady(ex);
  });
  req.once('error', (err: Error) => {
    if (!ex.done) ex.fail('BAD_REQUEST', `the request body could not be read: ${err.message}`);
  });
}
