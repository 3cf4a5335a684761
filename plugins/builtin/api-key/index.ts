// api-key: a consumer presents a key in a header (or a query parameter); its SHA-256 is looked up
// among the configured hashes. Comparing hashes instead of keys makes the lookup's timing
// independent of how much of a real key an attacker has guessed: the Map compares digests the
// attacker cannot steer, so no constant-time compare of the raw key is needed.
//
//   - api-key: { header: x-api-key, keys: [ { consumer: acme, hash: "sha256:…" } ], forwardConsumerAs: x-consumer }
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { definePlugin, deny } from '../../api.ts';
import { PluginError } from '../../errors.ts';
import { HASH_PATTERN, HASH_PREFIX } from './hash.ts';

const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' });
// Keys longer than this are refused unhashed: no real key is that long.
const MAX_KEY_BYTES = 1024;

export const ApiKeySchema = Type.Object(
  {
    header: Type.Union([HeaderName, Type.Null()], { default: 'x-api-key', description: 'the request header carrying the key (null: none)' }),
    query: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null, description: 'a query parameter carrying the key (null: none)' }),
    keys: Type.Array(
      Type.Object(
        {
          consumer: Type.String({ minLength: 1, description: "the consumer's name (ctx.consumer, forwardConsumerAs)" }),
          hash: Type.String({ pattern: HASH_PATTERN, description: 'sha256:<hex> of the key: `meshgate key hash` or `printf %s KEY | sha256sum`' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    forwardConsumerAs: Type.Union([HeaderName, Type.Null()], { default: null, description: "the upstream header set to the consumer's name (null: none)" }),
    required: Type.Boolean({ default: true, description: 'false: requests without a key pass; a wrong key is still refused' }),
  },
  { additionalProperties: false },
);

function queryValue(query: string, name: string): string | undefined {
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (query.startsWith(name, start) && query.charCodeAt(start + name.length) === 61 /* = */) {
      try {
        return decodeURIComponent(query.slice(start + name.length + 1, end));
      } catch {
        return undefined;
      }
    }
    start = end + 1;
  }
  return undefined;
}

export default definePlugin({
  name: 'api-key',
  schema: ApiKeySchema,
  create(config, env) {
    const { header, query, forwardConsumerAs, required } = config;
    if (header === null && query === null) throw new PluginError('PLUGIN_CONFIG_INVALID', 'set header or query: where the key is read from');
    const consumers = new Map<string, string>();
    for (const k of config.keys) {
      const hex = k.hash.slice(HASH_PREFIX.length);
      if (consumers.has(hex)) throw new PluginError('PLUGIN_CONFIG_INVALID', `two keys have the same hash (consumers ${consumers.get(hex)} and ${k.consumer})`);
      consumers.set(hex, k.consumer);
    }
    const challenge = { 'www-authenticate': `ApiKey realm="meshgate"${header ? `, header="${header}"` : ''}` };
    const missing = deny(401, 'UNAUTHENTICATED', 'an API key is required', challenge);
    const invalid = deny(401, 'UNAUTHENTICATED', 'invalid API key', challenge);
    const failures = env.metrics.counter('meshgate_plugin_api_key_failures_total', 'Requests api-key refused, by route and reason.', ['route', 'reason']);
    const forwardAs = forwardConsumerAs?.toLowerCase();

    return {
      onRequest(ctx) {
        if (forwardAs !== undefined) ctx.removeHeader(forwardAs); // never the client's word
        let key = header === null ? undefined : ctx.header(header);
        if (key === undefined && query !== null) key = queryValue(ctx.query, query);
        if (key === undefined || key === '') {
          if (!required) return undefined;
          failures.inc({ route: ctx.route, reason: 'missing' });
          return missing;
        }
        const consumer = key.length > MAX_KEY_BYTES ? undefined : consumers.get(createHash('sha256').update(key, 'utf8').digest('hex'));
        if (consumer === undefined) {
          failures.inc({ route: ctx.route, reason: 'invalid' });
          return invalid;
        }
        ctx.consumer = consumer;
        if (header !== null) ctx.removeHeader(header);
        if (forwardAs !== undefined) ctx.setHeader(forwardAs, consumer);
        return undefined;
      },
    };
  },
});
