// The sidecar's outbound side: the app calls 127.0.0.1:4140 naming the target service in the Host
// header (or uses the sidecar as an HTTP proxy with an absolute-form target, `GET http://catalog/x`).
import type { Exchange } from '../client/exchange.ts';
import type { MeshClient } from '../client/mesh-client.ts';
import { hostWithoutPort, splitAbsoluteForm } from '../http/host.ts';
import type { Router } from '../http/proxy-listener.ts';
import type { RequestMetrics, RequestSeries } from '../observe/request-metrics.ts';

export class OutboundRouter implements Router {
  readonly #client: MeshClient;
  readonly #metrics: RequestMetrics;
  readonly #series = new Map<string, RequestSeries>();

  constructor(client: MeshClient, metrics: RequestMetrics) {
    this.#client = client;
    this.#metrics = metrics;
  }

  route(ex: Exchange): void {
    let host = ex.host;
    const url = ex.req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      const abs = splitAbsoluteForm(url);
      if (abs === undefined) {
        ex.fail('BAD_REQUEST', 'the request target must be a path or an absolute http:// URL');
        return;
      }
      host = abs.host;
      ex.path = abs.path;
    }
    const service = hostWithoutPort(host);
    if (service === '') {
      ex.fail('NO_ROUTE', 'the Host header must name the service to call');
      return;
    }
    if (!this.#client.knows(service)) {
      ex.fail('NO_ROUTE', `no service named "${service}" is known to the mesh`);
      return;
    }
    ex.service = service;
    ex.series = this.#seriesOf(service);
    this.#client.forward(ex);
  }

  #seriesOf(service: string): RequestSeries {
    let s = this.#series.get(service);
    if (s === undefined) {
      s = this.#metrics.series('outbound', service, '');
      this.#series.set(service, s);
    }
    return s;
  }
}
