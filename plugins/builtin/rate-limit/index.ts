// rate-limit: GCRA limits per caller, global across every gateway sharing the store. One atomic
// check (a Lua script on Redis, memory on the embedded store) covers all windows, so "10/s and
// 1000/h" never races and a refused request consumes nothing. On Redis, a busy caller's requests
// are served from slices of its limit taken ahead for `lease` (slices.ts).
//
//   - rate-limit: { key: jwt.sub, limits: [ { max: 10, per: 1s }, { max: 1000, per: 1h } ], whenStoreDown: fail-open }
//
// When the store cannot answer, fail-open decides with a per-process limiter holding the same limits
// (so an outage loosens limits to "per process", never to "none"); fail-closed refuses with 503.
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { DURATION_PATTERN, parseDuration } from '../../../config/duration.ts';
import { MemoryRateLimits } from '../../../mesh-proxy/store/memory/memory-rate-limits.ts';
import type { RateLimitDecision, RateLimitWindow } from '../../../mesh-proxy/store/types.ts';
import { definePlugin, deny, type LocalReply, type RequestContext } from '../../api.ts';
import { PluginError } from '../../errors.ts';
import { TrustedProxies } from '../shared/client-address.ts';
import { Slices } from './slices.ts';

const KEY_PATTERN = '^(ip|route|consumer|jwt\\.[A-Za-z0-9_.:-]+|header:[!#$%&\'*+.^_`|~0-9A-Za-z-]+)$';
/** Caller keys longer than this are hashed: Redis keys stay small whatever a client sends. */
const MAX_KEY = 128;
const LOG_EVERY_MS = 5000;
const MAX_LEASE_MS = 10_000;

export const RateLimitSchema = Type.Object(
  {
    key: Type.String({ pattern: KEY_PATTERN, default: 'ip', description: 'ip, route, consumer, jwt.<claim> or header:<name>' }),
    limits: Type.Array(
      Type.Object(
        {
          // Above ~2^53 the arithmetic is inexact; no real limit comes near 10^12.
          max: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'requests allowed per window' }),
          per: Type.String({ pattern: DURATION_PATTERN, description: 'a duration such as 1s, 1m, 1h' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 8 },
    ),
    whenStoreDown: Type.Union([Type.Literal('fail-open'), Type.Literal('fail-closed')], { default: 'fail-open', description: 'fail-open or fail-closed' }),
    headers: Type.Boolean({ default: true, description: 'RateLimit-Limit/-Remaining/-Reset on responses' }),
    lease: Type.String({
      pattern: DURATION_PATTERN,
      default: '50ms',
      description: "how far ahead a gateway may take a busy caller's units from Redis (0ms: one check per request)",
    }),
    trustedProxies: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'CIDRs whose X-Forwarded-For is believed (key: ip)' }),
  },
  { additionalProperties: false },
);

type Extract = (ctx: RequestContext) => string | undefined;

function extractor(key: string, proxies: TrustedProxies): Extract {
  if (key === 'ip') return (ctx) => proxies.clientOf(ctx.clientIp, proxies.empty ? undefined : ctx.header('x-forwarded-for'));
  // The route's name, not '': a global or service-level entry still gives each route its own bucket.
  if (key === 'route') return (ctx) => ctx.route;
  if (key === 'consumer') return (ctx) => ctx.consumer;
  if (key.startsWith('jwt.')) {
    const claim = key.slice(4);
    return (ctx) => {
      const v = ctx.claims?.[claim];
      return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
    };
  }
  const header = key.slice(7).toLowerCase();
  return (ctx) => ctx.header(header);
}

export default definePlugin({
  name: 'rate-limit',
  schema: RateLimitSchema,
  create(config, env) {
    let proxies: TrustedProxies;
    try {
      proxies = new TrustedProxies(config.trustedProxies);
    } catch (err) {
      throw new PluginError('PLUGIN_CONFIG_INVALID', `trustedProxies: ${(err as Error).message}`);
    }
    const windows: RateLimitWindow[] = config.limits.map((l) => ({ max: l.max, periodMs: parseDuration(l.per) }));
    if (windows.some((w) => w.periodMs < 1)) throw new PluginError('PLUGIN_CONFIG_INVALID', 'limits[].per must be at least 1ms');
    const extract = extractor(config.key, proxies);
    // Buckets are this entry's own: its place (route, service or global), its key and its limits,
    // so two routes with the same config count separately and a changed limit starts afresh.
    const scope = createHash('sha256').update(JSON.stringify([env.route, env.service, config.key, windows])).digest('base64url').slice(0, 16);
    const backstop = new MemoryRateLimits();
    const store = env.rateLimits;
    const checks = env.metrics.counter('meshgate_plugin_rate_limit_store_checks_total', 'rate-limit checks sent to the store (with slices, fewer than decisions).', []);
    const countCheck = (): void => checks.inc();
    const leaseMs = parseDuration(config.lease);
    if (leaseMs > MAX_LEASE_MS) throw new PluginError('PLUGIN_CONFIG_INVALID', `lease: at most 10s (units held longer drift too far from when they were counted), got ${config.lease}`);
    // The embedded store is in-process memory: nothing to save by slicing it.
    const slices = store.remote && leaseMs > 0 ? new Slices(store, windows, leaseMs, countCheck) : undefined;
    const failOpen = config.whenStoreDown === 'fail-open';
    const decisions = env.metrics.counter('meshgate_plugin_rate_limit_decisions_total', 'rate-limit decisions, by route and result (allowed, limited).', ['route', 'result']);
    const storeErrors = env.metrics.counter('meshgate_plugin_rate_limit_store_errors_total', 'rate-limit checks the store could not answer, by route and mode (fail-open, fail-closed).', ['route', 'mode']);
    let lastLog = 0;

    // Callers without a key value share one bucket whose name no caller can send (':' vs '!').
    const anonymous = `${scope}!anonymous`;
    const bucketOf = (ctx: RequestContext): string => {
      const who = extract(ctx);
      if (who === undefined) return anonymous;
      return `${scope}:${who.length > MAX_KEY ? createHash('sha256').update(who).digest('base64url') : who}`;
    };

    const decide = (ctx: RequestContext, d: RateLimitDecision): LocalReply | undefined => {
      const headers = config.headers ? { 'ratelimit-limit': String(d.limit), 'ratelimit-remaining': String(d.remaining), 'ratelimit-reset': String(Math.ceil(d.resetMs / 1000)) } : undefined;
      if (d.allowed) {
        decisions.inc({ route: ctx.route, result: 'allowed' });
        if (headers) for (const name in headers) ctx.addResponseHeader(name, headers[name as keyof typeof headers]);
        return undefined;
      }
      decisions.inc({ route: ctx.route, result: 'limited' });
      return deny(429, 'RATE_LIMITED', `rate limit exceeded: ${d.limit} per ${config.limits[d.window].per}`, {
        ...headers,
        'retry-after': String(Math.max(1, Math.ceil(d.retryAfterMs / 1000))),
      });
    };

    const onStoreError = (ctx: RequestContext, bucket: string, err: unknown): LocalReply | undefined => {
      storeErrors.inc({ route: ctx.route, mode: config.whenStoreDown });
      const now = Date.now();
      if (now - lastLog >= LOG_EVERY_MS) {
        lastLog = now;
        env.log.warn({ route: ctx.route, mode: config.whenStoreDown, err: (err as Error).message }, 'rate-limit store unavailable');
      }
      if (failOpen) return decide(ctx, backstop.consumeNow(bucket, windows, 1, now));
      return deny(503, 'RATE_LIMIT_UNAVAILABLE', 'the rate-limit store is unavailable', { 'retry-after': '1' });
    };

    // A verdict not known yet: the chain awaits this. (async/await: no per-request closures.)
    const later = async (ctx: RequestContext, bucket: string, pending: Promise<RateLimitDecision>): Promise<LocalReply | undefined> => {
      let d: RateLimitDecision;
      try {
        d = await pending;
      } catch (err) {
        return onStoreError(ctx, bucket, err);
      }
      return decide(ctx, d);
    };

    return {
      onRequest(ctx) {
        const bucket = bucketOf(ctx);
        if (slices === undefined) {
          countCheck();
          return later(ctx, bucket, store.consume(bucket, windows, 1));
        }
        const d = slices.take(bucket, Date.now());
        return d instanceof Promise ? later(ctx, bucket, d) : decide(ctx, d);
      },
    };
  },
});
