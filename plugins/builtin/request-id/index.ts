// request-id: the edge always keeps a valid incoming x-request-id or makes one, sends it upstream,
// logs it and echoes it to the client. This plugin adjusts that per route: mint a fresh id whatever
// the client sent (an id from outside is a value the caller controls), and/or also carry it under
// another header name upstream and in the response (e.g. x-correlation-id for apps expecting that).
//
//   - request-id: { trustIncoming: false, header: x-correlation-id }
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../api.ts';

const Name = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' });

export default definePlugin({
  name: 'request-id',
  schema: Type.Object(
    {
      trustIncoming: Type.Boolean({ default: true, description: "false: replace the client's x-request-id with a new one upstream" }),
      header: Type.Union([Name, Type.Null()], { default: null, description: 'also send the id upstream and back under this header' }),
    },
    { additionalProperties: false },
  ),
  create(c) {
    const extra = c.header?.toLowerCase() ?? null;
    return {
      onRequest(ctx) {
        if (!c.trustIncoming) ctx.setRequestId(randomBytes(16).toString('hex'));
        const id = ctx.requestId;
        if (extra !== null) {
          ctx.setHeader(extra, id);
          ctx.addResponseHeader(extra, id);
        }
        return undefined;
      },
    };
  },
});
