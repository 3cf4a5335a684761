// A test helper for plugin authors: runs a plugin's phases against a fake request, with the same
// config validation and the same chain runner the gateway uses, without starting any server.
//
//   const run = await runPlugin(myPlugin, { header: 'x-tenant' }, { headers: { 'x-tenant': 'a' } });
//   assert.equal(run.reply?.status, undefined);
//   assert.equal(run.upstream.headers['x-tenant-checked'], 'yes');
import { Registry } from 'prom-client';
import pino from 'pino';
import type { Exchange } from '../mesh-proxy/client/exchange.ts';
import { MemoryRateLimits } from '../mesh-proxy/store/memory/memory-rate-limits.ts';
import type { RateLimitStore } from '../mesh-proxy/store/types.ts';
import type { LocalReply, PluginDefinition, PluginPlace } from './api.ts';
import { pluginChainMetrics } from './chain-metrics.ts';
import { compileChains, type ChainSet } from './compile.ts';
import type { PluginContext } from './context.ts';

export interface FakeRequest {
  method?: string;
  /** Path, optionally with "?query". */
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  clientIp?: string;
  /** The caller's mesh identity (as on a sidecar's mTLS inbound). */
  identity?: string;
  route?: string;
  service?: string;
  contentLength?: number;
  requestId?: string;
}

export interface PluginRunOptions {
  place?: PluginPlace;
  dryRun?: boolean;
  /** Shared between runs to test limits across requests (default: a fresh memory store per harness). */
  rateLimits?: RateLimitStore;
  /** Where the plugin's metrics go, to assert on them (default: a private registry). */
  registry?: Registry;
}

export interface PluginRun {
  /** The plugin's local reply, if it answered instead of the upstream. */
  readonly reply: LocalReply | undefined;
  /** Whether the request would have gone upstream. */
  readonly forwarded: boolean;
  /** The upstream request as the plugin left it. */
  readonly upstream: { readonly path: string; readonly headers: Readonly<Record<string, string>> };
  /** Runs the response phases for an upstream response; returns the headers the client would get. */
  respond(status: number, headers?: Record<string, string>): Record<string, string>;
  /** Runs the log phase. */
  log(status?: number): void;
  readonly context: PluginContext;
}

class FakeExchange {
  readonly method: string;
  readonly startedAt = performance.now();
  readonly req: { socket: { remoteAddress: string } };
  headers: string[] = [];
  requestId: string;
  route: string;
  service: string;
  path: string;
  contentLength: number;
  hasBody: boolean;
  timeoutSlot = -1;
  grpcTimeoutSlot = -1;
  statusCode = 0;
  errorCode: string | undefined;
  done = false;
  hooks: PluginContext | undefined;
  bodyLimit = -1;
  replied: LocalReply | undefined;

  constructor(r: FakeRequest) {
    this.method = r.method ?? 'GET';
    this.req = { socket: { remoteAddress: r.clientIp ?? '127.0.0.1' } };
    for (const [k, v] of Object.entries(r.headers ?? {})) this.headers.push(k, v);
    this.requestId = r.requestId ?? 'test-request';
    this.route = r.route ?? 'test';
    this.service = r.service ?? 'test';
    this.path = r.path ?? '/';
    this.contentLength = r.contentLength ?? -1;
    this.hasBody = this.contentLength > 0;
  }

  reply(status: number, code: string | undefined, message: string | undefined, headers: Record<string, string> | undefined, body: string | Buffer | undefined): void {
    this.done = true;
    this.statusCode = status;
    this.errorCode = code;
    const extra: string[] = [];
    for (const k in headers ?? {}) extra.push(k, headers![k]);
    this.hooks?.onResponse(this as unknown as Exchange, status, extra, true);
    this.replied = { status, code, message, body, headers: toRecord(extra) };
  }

  limitBody(bytes: number): void {
    this.bodyLimit = bytes;
  }
}

function toRecord(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i].toLowerCase();
    out[k] = out[k] === undefined ? flat[i + 1] : `${out[k]}, ${flat[i + 1]}`;
  }
  return out;
}

const silent = pino({ level: 'silent' });

/** A plugin instance with its config validated, reusable across fake requests (state persists). */
export async function pluginHarness(def: PluginDefinition<never>, config: unknown, o: PluginRunOptions = {}) {
  const rateLimits = o.rateLimits ?? new MemoryRateLimits();
  const set: ChainSet = await compileChains({
    file: '(test)',
    place: o.place ?? 'edge',
    registry: new Map([[def.name, def as PluginDefinition]]),
    global: [],
    globalPath: 'plugins.global',
    services: {},
    servicesPath: 'plugins.services',
    targets: [{ route: 'test', service: 'test', entries: [{ [def.name]: config, ...(o.dryRun ? { dryRun: true } : {}) }], path: 'plugins' }],
    log: silent,
    metrics: pluginChainMetrics(o.registry ?? new Registry()),
    rateLimits,
    baseDir: process.cwd(),
  });
  const chain = set.chains.get('test')!;
  return {
    /** Runs the request phases for one fake request. */
    async run(r: FakeRequest = {}): Promise<PluginRun> {
      const ex = new FakeExchange(r);
      const full = r.path ?? '/';
      const q = full.indexOf('?');
      let forwarded = false;
      await new Promise<void>((resolve) => {
        const next = { proceed: () => ((forwarded = true), resolve()) };
        const origReply = ex.reply.bind(ex);
        ex.reply = (...a) => (origReply(...a), resolve());
        chain.run(ex as unknown as Exchange, { path: q < 0 ? full : full.slice(0, q), query: q < 0 ? '' : full.slice(q), host: r.host ?? 'localhost', identity: r.identity }, next);
      });
      const ctx = ex.hooks!;
      return {
        reply: ex.replied,
        forwarded,
        upstream: { path: ex.path, headers: toRecord(ex.headers) },
        context: ctx,
        respond(status, headers = {}) {
          const flat: string[] = [];
          for (const k in headers) flat.push(k, headers[k]);
          ex.statusCode = status;
          ctx.onResponse(ex as unknown as Exchange, status, flat, false);
          return toRecord(flat);
        },
        log(status = ex.statusCode || 200) {
          ex.statusCode = status;
          ctx.onFinished();
        },
      };
    },
    close: () => set.close(),
  };
}

/** Validates `config`, creates the plugin, runs one fake request through it and closes it. */
export async function runPlugin(def: PluginDefinition<never>, config: unknown, request: FakeRequest = {}, o: PluginRunOptions = {}): Promise<PluginRun> {
  const h = await pluginHarness(def, config, o);
  try {
    return await h.run(request);
  } finally {
    await h.close();
  }
}
