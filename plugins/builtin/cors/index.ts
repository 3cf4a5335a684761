// cors: answers preflights at the edge and marks responses readable by the allowed origins (the
// Fetch standard's CORS protocol). Preflights never reach the upstream. The headers are also added
// to meshgate's own replies (a 401 or 429 a browser must be able to read).
//
//   - cors: { origins: [https://app.example.com, "https://*.example.com"], credentials: true }
import { Type } from '@sinclair/typebox';
import { definePlugin, type RequestContext } from '../../api.ts';
import { PluginError } from '../../errors.ts';

const Name = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP token' });

export const CorsSchema = Type.Object(
  {
    origins: Type.Array(Type.String({ minLength: 1, description: 'an origin, "*", or "https://*.example.com"' }), { minItems: 1 }),
    methods: Type.Array(Name, { default: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'] }),
    allowHeaders: Type.Array(Name, { default: [], description: 'request headers allowed (empty: those the preflight asks for)' }),
    exposeHeaders: Type.Array(Name, { default: [] }),
    credentials: Type.Boolean({ default: false }),
    maxAge: Type.Integer({ minimum: 0, default: 600, description: 'seconds a browser may cache a preflight' }),
  },
  { additionalProperties: false },
);

const ALLOWED = 'cors.allowed';

export default definePlugin({
  name: 'cors',
  schema: CorsSchema,
  places: ['edge'],
  create(c) {
    const any = c.origins.includes('*');
    if (any && c.credentials) throw new PluginError('PLUGIN_CONFIG_INVALID', 'origins "*" cannot be combined with credentials: true (browsers refuse it); list the origins');
    const exact = new Set(c.origins.filter((o) => !o.includes('*')).map((o) => o.toLowerCase()));
    // "https://*.example.com" → scheme "https://", suffix ".example.com"
    const wild = c.origins.filter((o) => o !== '*' && o.includes('*')).map((o) => {
      const m = /^([a-z][a-z0-9+.-]*:\/\/)\*(\.[^*/]+)$/i.exec(o);
      if (!m) throw new PluginError('PLUGIN_CONFIG_INVALID', `origin "${o}": a wildcard must be "scheme://*.domain"`);
      return { scheme: m[1].toLowerCase(), suffix: m[2].toLowerCase() };
    });
    const methods = c.methods.join(', ');
    const allowHeaders = c.allowHeaders.join(', ');
    const expose = c.exposeHeaders.join(', ');
    const maxAge = String(c.maxAge);

    const allowed = (origin: string): boolean => {
      const o = origin.toLowerCase();
      if (any || exact.has(o)) return true;
      for (const w of wild) if (o.startsWith(w.scheme) && o.endsWith(w.suffix) && o.length > w.scheme.length + w.suffix.length) return true;
      return false;
    };
    const allowOrigin = (origin: string) => (any && !c.credentials ? '*' : origin);

    return {
      onRequest(ctx: RequestContext) {
        const origin = ctx.header('origin');
        if (origin === undefined) return undefined;
        const ok = allowed(origin);
        const requested = ctx.method === 'OPTIONS' ? ctx.header('access-control-request-method') : undefined;
        if (requested !== undefined) {
          // A preflight: answered here. An origin not allowed gets no CORS headers, so the browser blocks.
          const headers: Record<string, string> = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' };
          if (ok) {
            headers['access-control-allow-origin'] = allowOrigin(origin);
            headers['access-control-allow-methods'] = methods;
            const asked = ctx.header('access-control-request-headers');
            const h = allowHeaders || asked;
            if (h) headers['access-control-allow-headers'] = h;
            headers['access-control-max-age'] = maxAge;
            if (c.credentials) headers['access-control-allow-credentials'] = 'true';
          }
          return { status: 204, headers, body: '' };
        }
        if (ok) ctx.locals.set(ALLOWED, origin);
        return undefined;
      },
      onResponse(ctx) {
        const origin = ctx.locals.get(ALLOWED);
        if (typeof origin !== 'string') return;
        ctx.setResponseHeader('access-control-allow-origin', allowOrigin(origin));
        if (c.credentials) ctx.setResponseHeader('access-control-allow-credentials', 'true');
        if (expose) ctx.setResponseHeader('access-control-expose-headers', expose);
        const vary = ctx.responseHeader('vary');
        if (vary === undefined) ctx.setResponseHeader('vary', 'Origin');
        else if (!/\borigin\b/i.test(vary)) ctx.setResponseHeader('vary', `${vary}, Origin`);
      },
    };
  },
});
