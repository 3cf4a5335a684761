// jwt-auth: verifies a bearer JWT (RFC 7519) against local keys or an IdP's JWKS, checks issuer,
// audience and time claims, and passes the claims on: to later plugins (ctx.claims, ctx.consumer)
// and to the upstream as headers. Refusals are 401 with an RFC 6750 challenge.
//
//   - jwt-auth: { jwks: https://id.example.org/.well-known/jwks.json, issuer: https://id.example.org, audience: api }
import { jwtVerify, type JWTVerifyOptions } from 'jose';
import { VerifiedTokens } from './verified-tokens.ts';
import { parseDuration } from '../../../config/duration.ts';
import { definePlugin, type RequestContext } from '../../api.ts';
import { PluginError } from '../../errors.ts';
import { buildReplies, classify, REASONS, type Reason } from './failures.ts';
import { JwksCache } from './jwks-cache.ts';
import { buildKeyResolver } from './keys.ts';
import { JwtAuthSchema } from './schema.ts';
import { findToken, looksCompact } from './token.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
// Header values must be visible ASCII (RFC 9110 §5.5); anything else is percent-encoded.
const UNSAFE_HEADER_VALUE = /[^\t\x20-\x7e]/;

function headerValue(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  return UNSAFE_HEADER_VALUE.test(s) ? encodeURIComponent(s) : s;
}

export default definePlugin({
  name: 'jwt-auth',
  schema: JwtAuthSchema,
  create(config, env) {
    if (config.jwks === undefined && config.keys === undefined) throw new PluginError('PLUGIN_CONFIG_INVALID', 'set jwks (a URL) or keys (local keys)');
    let jwks: JwksCache | undefined;
    if (config.jwks !== undefined) {
      const url = new URL(config.jwks);
      // A JWKS over plain HTTP lets anyone on the path mint tokens; allowed on loopback only.
      if (url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) throw new PluginError('PLUGIN_CONFIG_INVALID', `jwks must be an https URL (http only on loopback), got ${url.protocol}`);
      jwks = new JwksCache({
        url,
        ttlMs: parseDuration(config.jwksCacheTtl),
        cooldownMs: parseDuration(config.jwksCooldown),
        timeoutMs: parseDuration(config.jwksTimeout),
        maxBytes: config.jwksMaxBytes,
        onError: (err) => env.log.warn({ jwks: url.href, err: err.message }, 'jwt-auth: JWKS fetch failed; keeping the keys already fetched'),
      });
    }
    const key = buildKeyResolver({ keys: config.keys ?? [], jwks, algorithms: config.algorithms, baseDir: env.baseDir });
    // Fetch the keys now so the first request does not wait; an IdP down at start is not fatal.
    void jwks?.refresh();

    const options: JWTVerifyOptions = Object.freeze({
      algorithms: config.algorithms,
      issuer: config.issuer,
      audience: config.audience,
      clockTolerance: parseDuration(config.clockSkew) / 1000,
      requiredClaims: config.requiredClaims,
    });
    const replies = buildReplies(config.realm);
    const failures = env.metrics.counter('meshgate_plugin_jwt_auth_failures_total', 'Requests jwt-auth refused, by route and reason.', ['route', 'reason']);
    const forwarded = Object.entries(config.forwardClaims).map(([claim, header]) => [claim, header.toLowerCase()] as const);
    const { maxTokenBytes, required, tokenSources, forwardAuthorization } = config;
    const verified = new VerifiedTokens(config.cacheSize, options.clockTolerance as number, jwks ? parseDuration(config.jwksCacheTtl) : 300_000);
    const keysVersion = () => jwks?.version ?? 0;

    const fail = (ctx: RequestContext, reason: Reason) => {
      failures.inc({ route: ctx.route, reason });
      return replies[reason];
    };

    const accept = (ctx: RequestContext, payload: Readonly<Record<string, unknown>>, fromHeader: boolean) => {
      ctx.claims = payload;
      if (typeof payload.sub === 'string') ctx.consumer = payload.sub;
      for (const [claim, header] of forwarded) {
        const v = headerValue(payload[claim]);
        if (v !== undefined) ctx.setHeader(header, v);
      }
      if (fromHeader && !forwardAuthorization) ctx.removeHeader('authorization');
      return undefined;
    };

    return {
      onRequest(ctx) {
        // A client must never choose the values of the claim headers the upstream trusts.
        for (let i = 0; i < forwarded.length; i++) ctx.removeHeader(forwarded[i][1]);
        const found = findToken(ctx, tokenSources);
        if (found === undefined) return required ? fail(ctx, 'missing') : undefined;
        const { token, fromHeader } = found;
        // Cheap checks first: an oversized or non-JWS token costs no parsing and no crypto.
        if (token.length > maxTokenBytes) return fail(ctx, 'too_large');
        // A token verified before (same bytes, same key set) and still within exp/nbf skips the crypto,
        // and the shape check too (it passed it then): a scan of every character on every request.
        const known = verified.get(token, keysVersion());
        if (known !== undefined) return accept(ctx, known, fromHeader);
        if (!looksCompact(token)) return fail(ctx, 'malformed');
        const version = keysVersion();
        return jwtVerify(token, key as Parameters<typeof jwtVerify>[1], options).then(
          (r) => accept(ctx, verified.add(token, r.payload as Record<string, unknown>, version), fromHeader),
          (err: unknown) => {
            const reason = classify(err);
            if (reason === undefined) throw err;
            return fail(ctx, reason);
          },
        );
      },
      close: () => jwks?.close(),
    };
  },
});

export { REASONS as JWT_AUTH_FAILURE_REASONS };
