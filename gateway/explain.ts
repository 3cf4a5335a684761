// `POST /explain` on a gateway's admin API (meshgate explain): for a request described by method,
// host, path and headers, what this gateway would do with it now and why: the route, its policies,
// the traffic split and subset, the datacenter, and the endpoint the balancer would most likely
// pick with the breaker and ejection state behind that choice. Nothing is sent anywhere.
import { explainEndpoints } from '../mesh-proxy/client/explain-endpoints.ts';
import type { MeshClient } from '../mesh-proxy/client/mesh-client.ts';
import { GrpcKind, grpcKindOf } from '../mesh-proxy/http/grpc.ts';
import { hostWithoutPort } from '../mesh-proxy/http/host.ts';
import type { SplitTable } from '../mesh-proxy/traffic/split-table.ts';
import { describeSplit } from '../mesh-proxy/traffic/split.ts';
import type { DatacenterFailover } from './datacenters/dc-router.ts';
import { splitTarget } from './router/normalize-path.ts';
import { rewritePath, type RouteTable } from './router/route-table.ts';

export interface ExplainInput {
  method?: string;
  host?: string;
  path?: string;
  headers?: Record<string, string>;
}

export class ExplainError extends Error {
  readonly code = 'EXPLAIN_INVALID';
}

export interface ExplainDeps {
  table: RouteTable;
  client: MeshClient;
  splits: SplitTable;
  failover: DatacenterFailover | undefined;
}

export function explainRequest(input: unknown, d: ExplainDeps): object {
  const r = (input ?? {}) as ExplainInput;
  if (typeof r !== 'object' || Array.isArray(r)) throw new ExplainError('expected {"method", "host", "path", "headers"}');
  const method = (r.method ?? 'GET').toUpperCase();
  if (!/^[A-Z]+$/.test(method)) throw new ExplainError(`method: expected an HTTP method, got ${JSON.stringify(r.method)}`);
  const target = r.path ?? '/';
  if (typeof target !== 'string' || target.charCodeAt(0) !== 47) throw new ExplainError('path: expected a path starting with "/" (with its query, if any)');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) {
    if (typeof v !== 'string') throw new ExplainError(`headers.${k}: expected a string`);
    headers[k.toLowerCase()] = v;
  }
  const host = hostWithoutPort(r.host ?? headers.host ?? '');
  const { path, query } = splitTarget(target);
  const request = { method, host, path: target, headers };
  const route = d.table.match({ method, host, path, req: { headers } });
  if (route === undefined) return { request, route: null, outcome: `404 NO_ROUTE: no route matches ${method} ${host}${path}` };

  const grpc = grpcKindOf(headers['content-type'] ?? '');
  const policies = route.chain ? route.chain.links.map((l) => (l.dryRun ? `${l.name} (dry-run)` : l.name)) : [];
  const routeView = {
    name: route.name,
    service: route.service,
    upstreamPath: rewritePath(route, path, query),
    policies,
    ...(route.grpc ? { grpc: grpc === GrpcKind.None || method !== 'POST' ? 'a gRPC route: this request is not gRPC and would get 415 NOT_GRPC' : grpc === GrpcKind.Grpc ? 'gRPC' : 'gRPC-Web, translated to gRPC' } : {}),
  };

  const split = d.splits.get(route.service);
  let subset = '';
  let splitView: object | null = null;
  if (split !== undefined) {
    const flat: string[] = [];
    for (const [k, v] of Object.entries(headers)) flat.push(k, v);
    const s = split.split;
    const mi = split.matchIndex(flat);
    const matched = mi >= 0 ? s.match[mi] : undefined;
    subset = split.pick(flat, Math.random());
    const total = Object.values(s.weights).reduce((a, b) => a + b, 0);
    const why = matched
      ? `${matched.header ? `header ${matched.header.name}: ${matched.header.value}` : `cookie ${matched.cookie!.name}=${matched.cookie!.value}`} matches: always ${matched.subset}`
      : `by weight: ${Object.entries(s.weights).map(([k, w]) => `${k} ${Math.round((w / total) * 1000) / 10}%`).join(', ')} (this draw: ${subset})`;
    splitView = { version: s.version, split: describeSplit(s), subsetKey: s.subsetKey, subset, why, mirror: s.mirror ?? null };
  }

  const dc = d.failover?.explain(route.service);
  const endpoint = dc !== undefined && !dc.local ? null : explainEndpoints(d.client, route.service, split, subset);
  const outcome =
    routeView.grpc?.startsWith('a gRPC route') === true
      ? '415 NOT_GRPC'
      : endpoint === null
        ? `forwarded to datacenter ${dc!.dc}'s edge, which picks its own endpoint`
        : endpoint.candidates === 0
          ? '503 NO_ENDPOINTS'
          : `forwarded to ${route.service}${endpoint.likely ? `, most likely ${endpoint.likely}` : ''}${policies.length ? ` once ${policies.join(', ')} let it through` : ''}`;
  return { request, route: routeView, split: splitView, datacenter: dc ?? null, endpoint, outcome };
}
