// The edge's route table, compiled once per config snapshot. Routes are tried in file order and the
// first match wins (as in Envoy's route lists), so an operator reads precedence off the file.
// Path prefixes match whole segments (Gateway API PathPrefix): /catalog matches /catalog and
// /catalog/items, not /catalogue.
import type { RouteConfig } from '../../config/schema.ts';
import { parseDuration } from '../../config/duration.ts';
import type { RequestMetrics, RequestSeries } from '../../mesh-proxy/observe/request-metrics.ts';
import type { DownstreamRequest } from '../../mesh-proxy/http/h2-downstream.ts';
import type { PluginChain } from '../../plugins/chain.ts';

export interface CompiledRoute {
  readonly name: string;
  readonly service: string;
  readonly exactHosts: ReadonlySet<string> | null;
  readonly wildcardHosts: readonly string[] | null; // ".example.com" for "*.example.com"
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | null;
  readonly headers: ReadonlyArray<readonly [string, string]> | null;
  readonly stripPrefix: boolean;
  readonly replacePrefix: string | null;
  readonly timeoutMs: number;
  readonly perTryTimeoutMs: number;
  readonly allowNonIdempotent: boolean;
  /** WebSocket upgrades allowed (opt-in, as Envoy's upgrade_configs), and their idle timeout (0: the service's). */
  readonly websocket: boolean;
  /** gRPC only; gRPC-Web translated. */
  readonly grpc: boolean;
  readonly websocketIdleMs: number;
  readonly series: RequestSeries;
  /** The route's plugins (global, service and route level), or undefined when it has none. */
  readonly chain: PluginChain | undefined;
}

export interface RouteRequest {
  readonly method: string;
  /** Host header without port, lower-case. */
  readonly host: string;
  /** Normalized path, without the query. */
  readonly path: string;
  readonly req: Pick<DownstreamRequest, 'headers'>;
}

export function compileRoutes(routes: readonly RouteConfig[], metrics: RequestMetrics, chains?: ReadonlyMap<string, PluginChain>): RouteTable {
  return new RouteTable(
    routes.map((r): CompiledRoute => {
      const hosts = r.match.host === undefined ? null : Array.isArray(r.match.host) ? r.match.host : [r.match.host];
      const exact = hosts?.filter((h) => !h.startsWith('*.')).map((h) => h.toLowerCase());
      const wild = hosts?.filter((h) => h.startsWith('*.')).map((h) => h.slice(1).toLowerCase());
      const prefix = r.match.pathPrefix.length > 1 && r.match.pathPrefix.endsWith('/') ? r.match.pathPrefix.slice(0, -1) : r.match.pathPrefix;
      return Object.freeze({
        name: r.name,
        service: r.service,
        exactHosts: exact && exact.length > 0 ? new Set(exact) : hosts ? new Set<string>() : null,
        wildcardHosts: wild && wild.length > 0 ? wild : null,
        prefix,
        methods: r.match.methods ? new Set(r.match.methods) : null,
        headers: r.match.headers ? Object.entries(r.match.headers).map(([k, v]) => [k.toLowerCase(), v] as const) : null,
        stripPrefix: r.rewrite?.stripPrefix ?? false,
        replacePrefix: r.rewrite?.prefix ?? null,
        timeoutMs: r.timeout ? parseDuration(r.timeout) : 0,
        perTryTimeoutMs: r.perTryTimeout ? parseDuration(r.perTryTimeout) : 0,
        allowNonIdempotent: r.retries?.allowNonIdempotent ?? false,
        websocket: r.websocket === true,
        grpc: r.grpc === true,
        websocketIdleMs: r.websocketIdleTimeout ? parseDuration(r.websocketIdleTimeout) : 0,
        series: metrics.series('edge', r.service, r.name),
        chain: chains?.get(r.name),
      });
    }),
  );
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: CompiledRoute[]) {
    this.routes = Object.freeze(routes);
  }

  match(r: RouteRequest): CompiledRoute | undefined {
    for (const route of this.routes) {
      if (route.methods !== null && !route.methods.has(r.method)) continue;
      if (!pathMatches(route.prefix, r.path)) continue;
      if ((route.exactHosts !== null || route.wildcardHosts !== null) && !hostMatches(route, r.host)) continue;
      if (route.headers !== null && !headersMatch(route.headers, r.req)) continue;
      return route;
    }
    return undefined;
  }
}

function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* '/' */
}

function hostMatches(route: CompiledRoute, host: string): boolean {
  if (route.exactHosts?.has(host)) return true;
  if (route.wildcardHosts !== null) {
    for (const suffix of route.wildcardHosts) if (host.endsWith(suffix) && host.length > suffix.length) return true;
  }
  return false;
}

function headersMatch(expected: ReadonlyArray<readonly [string, string]>, req: Pick<DownstreamRequest, 'headers'>): boolean {
  for (const [name, value] of expected) {
    const got = req.headers[name];
    if (Array.isArray(got) ? !got.includes(value) : got !== value) return false;
  }
  return true;
}

/** The upstream path (with the query) after the route's rewrite. */
export function rewritePath(route: CompiledRoute, path: string, query: string): string {
  if (!route.stripPrefix && route.replacePrefix === null) return path + query;
  let rest = route.prefix === '/' ? path : path.slice(route.prefix.length);
  if (route.replacePrefix !== null) {
    const base = route.replacePrefix.endsWith('/') ? route.replacePrefix.slice(0, -1) : route.replacePrefix;
    rest = base + (rest.startsWith('/') || rest === '' ? rest : `/${rest}`);
  }
  if (!rest.startsWith('/')) rest = `/${rest}`;
  return rest + query;
}
