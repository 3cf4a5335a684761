// request-size-limit: refuses request bodies over a size with 413. A declared Content-Length over the
// limit is refused before a byte of the body is read; a body without one (chunked, HTTP/2) is counted
// as it streams and cut at the limit, the 413 sent and the connection closed.
//
//   - request-size-limit: { maxBytes: 1048576 }
import { Type } from '@sinclair/typebox';
import { definePlugin, deny } from '../../api.ts';

export default definePlugin({
  name: 'request-size-limit',
  schema: Type.Object({ maxBytes: Type.Integer({ minimum: 0, description: 'the largest request body accepted, in bytes' }) }, { additionalProperties: false }),
  create(c) {
    const message = `the request body is larger than ${c.maxBytes} bytes`;
    return {
      onRequest(ctx) {
        if (ctx.contentLength > c.maxBytes) return deny(413, 'PAYLOAD_TOO_LARGE', message);
        if (ctx.hasBody && ctx.contentLength < 0) ctx.limitBody(c.maxBytes);
        return undefined;
      },
    };
  },
});
