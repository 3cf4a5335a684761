// Step 2 of a request at the edge: match a route, rewrite the path, hand the exchange to the mesh
// client. The table is read from one reference, so a reload can swap it between requests.
import type { Exchange } from '../mesh-proxy/client/exchange.ts';
import type { MeshClient } from '../mesh-proxy/client/mesh-client.ts';
import type { Router } from '../mesh-proxy/http/proxy-listener.ts';
import type { ChainNext } from '../plugins/chain.ts';
import { hostWithoutPort, splitAbsoluteForm } from '../mesh-proxy/http/host.ts';
import { splitTarget } from './router/normalize-path.ts';
import { rewritePath, type RouteTable } from './router/route-table.ts';
import { GrpcKind } from '../mesh-proxy/http/grpc.ts';
import { translateGrpcWeb } from './grpc-web/translation.ts';
import type { DatacenterFailover } from './datacenters/dc-router.ts';

export class EdgeRouter implements Router, ChainNext {
  table: RouteTable;
  /** Failover between datacenters, when the gateway has peers. */
  failover: DatacenterFailover | undefined;
  readonly #client: MeshClient;

  constructor(table: RouteTable, client: MeshClient) {
    this.table = table;
    this.#client = client;
  }

  route(ex: Exchange): void {
    let target = ex.req.url ?? '/';
    let authority = ex.host;
    if (target.charCodeAt(0) !== 47 /* '/' */) {
      const abs = splitAbsoluteForm(target);
      if (abs === undefined) {
        ex.fail('BAD_REQUEST', 'the request target must be a path');
        return;
      }
      target = abs.path;
      authority = abs.host; // RFC 9112 §3.2.2: the target's authority replaces the Host header
    }
    const { path, query } = splitTarget(target);
    const host = hostWithoutPort(authority);
    const method = ex.req.method ?? 'GET';
    const route = this.table.match({ method, host, path, req: ex.req });
    if (route === undefined) {
      ex.fail('NO_ROUTE', `no route matches ${method} ${host}${path}`);
      return;
    }
    ex.service = route.service;
    ex.route = route.name;
    ex.series = route.series;
    if (ex.upgrade !== undefined) {
      if (!route.websocket) {
        ex.fail('UPGRADE_NOT_ALLOWED', `route "${route.name}" does not allow WebSocket upgrades (set websocket: true on it)`);
        return;
      }
      ex.websocketIdleMs = route.websocketIdleMs;
    }
    ex.grpcRoute = route.grpc;
    ex.timeoutMs = route.timeoutMs;
    ex.perTryTimeoutMs = route.perTryTimeoutMs;
    ex.allowNonIdempotent = route.allowNonIdempotent;
    ex.path = rewritePath(route, path, query);
    // Step 3: the route's policies; they hand the exchange back through proceed().
    // A request another datacenter's edge failed over here already passed its policies there.
    if (route.chain !== undefined && !ex.fromPeerDc) route.chain.run(ex, { path, query, host, identity: undefined }, this);
    else this.proceed(ex);
  }

  proceed(ex: Exchange): void {
    // After the policies, so a CORS preflight for a gRPC-Web route has been answered by then.
    if (ex.grpcRoute) {
      if (ex.grpc === GrpcKind.None || ex.method !== 'POST') {
        ex.fail('NOT_GRPC', `route "${ex.route}" carries gRPC only: send a POST with content-type application/grpc, application/grpc-web or application/grpc-web-text`);
        return;
      }
      if (ex.grpc !== GrpcKind.Grpc && !ex.fromPeerDc) translateGrpcWeb(ex);
    }
    if (this.failover !== undefined && !ex.fromPeerDc) this.failover.forward(ex);
    else this.#client.forward(ex);
  }
}
