// headers: request and response header transforms (set, add, remove, rename), with values that may
// name the route, service, request id, client address or consumer. Templates are compiled once;
// fields that belong to a hop (Connection, Transfer-Encoding …), Host and HTTP/2 pseudo-headers are
// refused at config load: rewriting them would break framing or routing, not shape a request.
//
//   - headers: { request: { set: { x-tenant: acme }, remove: [x-debug] }, response: { add: { x-served-by: "%ROUTE%" } } }
//
// Variables are written Envoy-style, %NAME%: "${…}" is the config file's own environment interpolation.
import { Type } from '@sinclair/typebox';
import { definePlugin, type RequestContext, type RequestView } from '../../api.ts';
import { PluginError } from '../../errors.ts';

const Name = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' });
const Transform = Type.Object(
  {
    set: Type.Record(Type.String(), Type.String(), { default: {}, description: 'header → value, replacing any present' }),
    add: Type.Record(Type.String(), Type.String(), { default: {}, description: 'header → value, appended' }),
    remove: Type.Array(Name, { default: [] }),
    rename: Type.Record(Type.String(), Name, { default: {}, description: 'from → to' }),
  },
  { additionalProperties: false, default: {} },
);

export const HeadersSchema = Type.Object({ request: Transform, response: Transform }, { additionalProperties: false });

const PROTECTED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'content-length']);
const NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VARS = { ROUTE: 'route', SERVICE: 'service', REQUEST_ID: 'requestId', CLIENT_IP: 'clientIp', CONSUMER: 'consumer' } as const;
type Var = (typeof VARS)[keyof typeof VARS];
const VAR_RE = /%([A-Z_]+)%/g;

/** A value: literal text, or text with ${var} parts resolved per request. */
type Value = string | ((ctx: RequestView) => string);

function compile(template: string, at: string): Value {
  const parts: Array<{ text: string } | { name: Var }> = [];
  let last = 0;
  for (const m of template.matchAll(VAR_RE)) {
    const name = VARS[m[1] as keyof typeof VARS];
    if (name === undefined) throw new PluginError('PLUGIN_CONFIG_INVALID', `${at}: unknown variable %${m[1]}% (available: ${Object.keys(VARS).map((v) => `%${v}%`).join(', ')})`);
    if (m.index > last) parts.push({ text: template.slice(last, m.index) });
    parts.push({ name });
    last = m.index + m[0].length;
  }
  if (parts.length === 0) return template;
  if (last < template.length) parts.push({ text: template.slice(last) });
  return (ctx) => {
    let out = '';
    for (const p of parts) out += 'text' in p ? p.text : (ctx[p.name] ?? '');
    return out;
  };
}

interface Compiled {
  set: Array<[string, Value]>;
  add: Array<[string, Value]>;
  remove: string[];
  rename: Array<[string, string]>;
  empty: boolean;
}

function compileTransform(t: typeof HeadersSchema.static.request, side: string): Compiled {
  const check = (name: string, at: string): string => {
    const lower = name.toLowerCase();
    if (!NAME_RE.test(name)) throw new PluginError('PLUGIN_CONFIG_INVALID', `${side}.${at}: "${name}" is not a header name`);
    if (PROTECTED.has(lower)) throw new PluginError('PLUGIN_CONFIG_INVALID', `${side}.${at}: "${name}" belongs to the connection or routing and cannot be rewritten`);
    return lower;
  };
  const set = Object.entries(t.set).map(([k, v]): [string, Value] => [check(k, 'set'), compile(v, `${side}.set.${k}`)]);
  const add = Object.entries(t.add).map(([k, v]): [string, Value] => [check(k, 'add'), compile(v, `${side}.add.${k}`)]);
  const remove = t.remove.map((k) => check(k, 'remove'));
  const rename = Object.entries(t.rename).map(([from, to]): [string, string] => [check(from, 'rename'), check(to, 'rename')]);
  return { set, add, remove, rename, empty: set.length + add.length + remove.length + rename.length === 0 };
}

const valueOf = (v: Value, ctx: RequestView): string => (typeof v === 'string' ? v : v(ctx));

export default definePlugin({
  name: 'headers',
  schema: HeadersSchema,
  create(c) {
    const req = compileTransform(c.request, 'request');
    const res = compileTransform(c.response, 'response');
    return {
      beforeUpstream: req.empty
        ? undefined
        : (ctx: RequestContext) => {
            for (const [from, to] of req.rename) {
              const v = ctx.header(from);
              if (v !== undefined) {
                ctx.removeHeader(from);
                ctx.setHeader(to, v);
              }
            }
            for (const name of req.remove) ctx.removeHeader(name);
            for (const [name, v] of req.set) ctx.setHeader(name, valueOf(v, ctx));
            // add appends: setHeader replaces, so an existing value is kept with a comma (RFC 9110 §5.3)
            for (const [name, v] of req.add) {
              const prev = ctx.header(name);
              ctx.setHeader(name, prev === undefined ? valueOf(v, ctx) : `${prev}, ${valueOf(v, ctx)}`);
            }
          },
      onResponse: res.empty
        ? undefined
        : (ctx) => {
            for (const [from, to] of res.rename) {
              const v = ctx.responseHeader(from);
              if (v !== undefined) {
                ctx.removeResponseHeader(from);
                ctx.setResponseHeader(to, v);
              }
            }
            for (const name of res.remove) ctx.removeResponseHeader(name);
            for (const [name, v] of res.set) ctx.setResponseHeader(name, valueOf(v, ctx));
            for (const [name, v] of res.add) {
              const prev = ctx.responseHeader(name);
              ctx.setResponseHeader(name, prev === undefined ? valueOf(v, ctx) : `${prev}, ${valueOf(v, ctx)}`);
            }
          },
    };
  },
});
