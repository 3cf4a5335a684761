// A compiled plugin chain: the ordered plugin instances of one route (global, then service, then
// route level), split by phase so a request only visits the handlers that exist. A local reply
// ends the chain (Envoy's StopIteration); a plugin in dry-run mode is evaluated, logged and counted
// but never enforced; a plugin that throws fails that one request with 500, never the process.
import type { Exchange } from '../mesh-proxy/client/exchange.ts';
import type { Logger } from '../mesh-proxy/observe/log.ts';
import type { LocalReply, PluginHandlers } from './api.ts';
import { PluginContext, type RequestInfo } from './context.ts';
import type { PluginChainMetrics } from './chain-metrics.ts';

export type PluginLevel = 'global' | 'service' | 'route';

export interface ChainLink {
  readonly name: string;
  readonly level: PluginLevel;
  readonly dryRun: boolean;
  readonly handlers: PluginHandlers;
}

/** Where the chain hands the exchange when every onRequest and beforeUpstream has passed. */
export interface ChainNext {
  proceed(ex: Exchange): void;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

export class PluginChain {
  readonly links: readonly ChainLink[];
  readonly route: string;
  readonly #request: readonly ChainLink[];
  readonly #upstream: readonly ChainLink[];
  readonly #response: readonly ChainLink[];
  readonly #log: readonly ChainLink[];
  readonly #metrics: PluginChainMetrics;
  readonly #logger: Logger;

  constructor(route: string, links: readonly ChainLink[], metrics: PluginChainMetrics, logger: Logger) {
    this.route = route;
    this.links = links;
    this.#request = links.filter((l) => l.handlers.onRequest !== undefined);
    this.#upstream = links.filter((l) => l.handlers.beforeUpstream !== undefined);
    this.#response = links.filter((l) => l.handlers.onResponse !== undefined);
    this.#log = links.filter((l) => l.handlers.onLog !== undefined);
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** Runs the request phases; on success the exchange goes to `next`. */
  run(ex: Exchange, info: RequestInfo, next: ChainNext): void {
    const ctx = new PluginContext(ex, this, info);
    ex.hooks = ctx;
    this.#continue(ctx, 0, next);
  }

  #continue(ctx: PluginContext, from: number, next: ChainNext): void {
    const links = this.#request;
    for (let i = from; i < links.length; i++) {
      const link = links[i];
      let result: unknown;
      try {
        result = link.handlers.onRequest!(ctx);
      } catch (err) {
        if (this.#threw(ctx, link, err)) return;
        continue;
      }
      if (result === undefined) continue;
      if (isThenable(result)) {
        // Async handlers (a JWKS fetch, a Redis round trip) resume the chain where it stopped.
        result.then(
          (r) => {
            if (ctx.ex.done) return;
            if (r !== undefined && this.#answer(ctx, link, r as LocalReply)) return;
            this.#continue(ctx, i + 1, next);
          },
          (err: unknown) => {
            if (ctx.ex.done) return;
            if (!this.#threw(ctx, link, err)) this.#continue(ctx, i + 1, next);
          },
        );
        return;
      }
      if (this.#answer(ctx, link, result as LocalReply)) return;
    }
    for (const link of this.#upstream) {
      try {
        link.handlers.beforeUpstream!(ctx);
      } catch (err) {
        if (this.#threw(ctx, link, err)) return;
      }
    }
    next.proceed(ctx.ex);
  }

  /** Sends a plugin's reply, unless it runs in dry-run; true when the chain ended. */
  #answer(ctx: PluginContext, link: ChainLink, r: LocalReply): boolean {
    if (typeof r !== 'object' || r === null || !Number.isInteger(r.status) || r.status < 200 || r.status > 599) {
      return this.#threw(ctx, link, new TypeError(`onRequest returned ${JSON.stringify(r)}; expected undefined or a LocalReply with a status from 200 to 599`));
    }
    const code = r.code ?? String(r.status);
    if (link.dryRun) {
      this.#metrics.dryRun.inc({ plugin: link.name, route: this.route, code });
      this.#logger.info({ plugin: link.name, route: this.route, rid: ctx.requestId, status: r.status, code, reason: r.message }, 'dry-run: plugin would have answered');
      return false;
    }
    this.#metrics.replies.inc({ plugin: link.name, route: this.route, code });
    ctx.ex.reply(r.status, r.code, r.message, r.headers, r.body);
    return true;
  }

  /** A plugin failed: 500 for this request (dry-run plugins are only logged); true when the chain ended. */
  #threw(ctx: PluginContext, link: ChainLink, err: unknown): boolean {
    this.#metrics.errors.inc({ plugin: link.name, route: this.route });
    this.#logger.error({ plugin: link.name, route: this.route, rid: ctx.requestId, err }, 'plugin failed');
    if (link.dryRun) return false;
    ctx.ex.reply(500, 'PLUGIN_FAILED', `plugin ${link.name} failed`, undefined, undefined);
    return true;
  }

  runResponse(ctx: PluginContext): void {
    for (const link of this.#response) {
      try {
        link.handlers.onResponse!(ctx);
      } catch (err) {
        this.#metrics.errors.inc({ plugin: link.name, route: this.route });
        this.#logger.error({ plugin: link.name, route: this.route, rid: ctx.requestId, err }, 'plugin failed in onResponse');
      }
    }
  }

  runLog(ctx: PluginContext): void {
    for (const link of this.#log) {
      try {
        link.handlers.onLog!(ctx);
      } catch (err) {
        this.#metrics.errors.inc({ plugin: link.name, route: this.route });
        this.#logger.error({ plugin: link.name, route: this.route, rid: ctx.requestId, err }, 'plugin failed in onLog');
      }
    }
  }
}
