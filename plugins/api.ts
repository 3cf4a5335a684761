// The plugin API: what a policy author writes. A plugin declares a name, a config schema (TypeBox,
// validated by the same ajv as the rest of the config) and handlers for the phases it needs, in the
// order a request meets them (Envoy's filter statuses, fastify's hook names):
//
//   onRequest       may answer early (return a LocalReply: 401, 429, a CORS preflight …)
//   beforeUpstream  after every onRequest passed: rewrite the upstream request's headers or path
//   onResponse      the response's status and headers, from the upstream or a local reply
//   onLog           the finished exchange, after the response went out
//
// A plugin is created once per config snapshot (global, service or route level) and its instance
// serves every request of that snapshot; per-request state lives on the context, never in closures.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Counter, Histogram, Gauge } from 'prom-client';
import type { Logger } from '../mesh-proxy/observe/log.ts';
import type { RateLimitStore } from '../mesh-proxy/store/types.ts';

/** Where a plugin runs: the edge gateway, or a sidecar's inbound side (peers → app). */
export type PluginPlace = 'edge' | 'inbound';

/** An answer a plugin gives instead of the upstream. */
export interface LocalReply {
  readonly status: number;
  /** A stable error code; with no `body`, the reply is meshgate's JSON error {"error":{code,message,requestId}}. */
  readonly code?: string;
  readonly message?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A body of your own (then `code`/`message` only label the reply in metrics and logs). */
  readonly body?: string | Buffer;
}

/** What every phase can read about the request. */
export interface RequestView {
  readonly method: string;
  /** The normalized path the route matched, before any rewrite, without the query. */
  readonly path: string;
  /** The query string without "?" ('' when none). */
  readonly query: string;
  /** The request's host, lower-case, without the port. */
  readonly host: string;
  readonly route: string;
  readonly service: string;
  readonly requestId: string;
  /** The peer's address (the TCP peer: see a plugin's trusted-proxy option for x-forwarded-for). */
  readonly clientIp: string;
  /** The caller's verified mesh identity (spiffe://…) on a sidecar's mTLS inbound; undefined at the edge. */
  readonly identity: string | undefined;
  /** Verified JWT claims, set by jwt-auth for the plugins after it. */
  claims: Readonly<Record<string, unknown>> | undefined;
  /** The authenticated consumer's name (api-key, or jwt-auth's subject). */
  consumer: string | undefined;
  /** A request header's value (first occurrence; case-insensitive name), as it will be sent upstream. */
  header(name: string): string | undefined;
  /** Per-request values plugins pass to each other or to their own later phases, by key. */
  readonly locals: Map<string, unknown>;
}

export interface RequestContext extends RequestView {
  /** Sets (replaces) a header on the request sent upstream. */
  setHeader(name: string, value: string): void;
  /** Removes a header from the request sent upstream. */
  removeHeader(name: string): void;
  /** The path (with its query) that will be sent upstream, after the route's rewrite. */
  readonly upstreamPath: string;
  /** Rewrites the upstream path (with its query, if any). */
  setPath(pathWithQuery: string): void;
  /** Replaces the request id: sent upstream, echoed to the client and logged. */
  setRequestId(id: string): void;
  /** Stages a header for the response, whichever it turns out to be (RateLimit-*, CORS …). */
  addResponseHeader(name: string, value: string): void;
  /** The request body's declared length, or -1 when unknown (chunked / none). */
  readonly contentLength: number;
  readonly hasBody: boolean;
  /** Refuses a body longer than `bytes` while it streams (413 PAYLOAD_TOO_LARGE). */
  limitBody(bytes: number): void;
}

export interface ResponseContext extends RequestView {
  readonly status: number;
  /** True when meshgate answered itself (a plugin's reply or a mesh error) instead of the upstream. */
  readonly local: boolean;
  responseHeader(name: string): string | undefined;
  setResponseHeader(name: string, value: string): void;
  removeResponseHeader(name: string): void;
}

export interface LogContext extends RequestView {
  readonly status: number;
  /** The error code of a local reply, if any. */
  readonly errorCode: string | undefined;
  readonly durationMs: number;
}

type Maybe<T> = T | Promise<T>;

/** The handlers a plugin instance provides; any subset. */
export interface PluginHandlers {
  onRequest?(ctx: RequestContext): Maybe<LocalReply | undefined | void>;
  beforeUpstream?(ctx: RequestContext): void;
  onResponse?(ctx: ResponseContext): void;
  onLog?(ctx: LogContext): void;
  /** Called when the snapshot that created the instance is retired (after its requests drained). */
  close?(): Maybe<void>;
}

/** Metrics a plugin may create: names must start with `meshgate_plugin_`; labels from fixed sets. */
export interface PluginMetrics {
  counter<L extends string>(name: string, help: string, labelNames?: L[]): Counter<L>;
  gauge<L extends string>(name: string, help: string, labelNames?: L[]): Gauge<L>;
  histogram<L extends string>(name: string, help: string, labelNames?: L[], buckets?: number[]): Histogram<L>;
}

/** What a plugin gets when it is created. */
export interface PluginEnv {
  readonly place: PluginPlace;
  /** The route it is attached to ('' for global or service level). */
  readonly route: string;
  /** The service it is attached to or that its route targets ('' for global). */
  readonly service: string;
  readonly log: Logger;
  readonly metrics: PluginMetrics;
  /** Shared rate-limit counters (Redis or memory, as the process's store is). */
  readonly rateLimits: RateLimitStore;
  /** The directory of the config file, to resolve relative paths against. */
  readonly baseDir: string;
  readonly dryRun: boolean;
}

export interface PluginDefinition<C = unknown> {
  readonly name: string;
  /** The JSON Schema (TypeBox) of the plugin's config; defaults are filled in. */
  readonly schema: TSchema;
  /** Places the plugin makes sense in (default both). */
  readonly places?: readonly PluginPlace[];
  /** Builds an instance from its validated config. May be async (fetch keys, read files). */
  create(config: C, env: PluginEnv): Maybe<PluginHandlers>;
}

/** Declares a plugin; the config type follows from the schema. */
export function definePlugin<S extends TSchema>(def: {
  name: string;
  schema: S;
  places?: readonly PluginPlace[];
  create(config: Static<S>, env: PluginEnv): Maybe<PluginHandlers>;
}): PluginDefinition<Static<S>> {
  if (!/^[a-z][a-z0-9-]*$/.test(def.name)) throw new TypeError(`plugin name "${def.name}" must be lower-case letters, digits and "-"`);
  return Object.freeze({ ...def });
}

/** A JSON error reply in meshgate's format. */
export function deny(status: number, code: string, message: string, headers?: Record<string, string>): LocalReply {
  return { status, code, message, headers };
}
