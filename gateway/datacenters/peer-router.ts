// The peer listener's router: requests other datacenters' edges failed over to this one. Only
// their edges may call (verified SPIFFE identity); such a request is served from this datacenter
// and never sent on, and skips the route's plugins (the datacenter that accepted it ran them).
import type { Exchange } from '../../mesh-proxy/client/exchange.ts';
import type { Router } from '../../mesh-proxy/http/proxy-listener.ts';
import { peerIdentityOf } from '../../mesh-proxy/identity/mtls-server.ts';
import type { Logger } from '../../mesh-proxy/observe/log.ts';
import { DC_HEALTH_PATH, type DcHealthDoc } from './dc-health.ts';
import { DC_HOP_HEADER } from './dc-router.ts';

const JSON_HEADERS = { 'content-type': 'application/json' };

export class PeerRouter implements Router {
  readonly #edge: Router;
  readonly #dc: string;
  readonly #allowed: ReadonlySet<string>;
  readonly #health: () => DcHealthDoc;
  readonly #log: Logger;

  constructor(edge: Router, dc: string, allowed: ReadonlySet<string>, health: () => DcHealthDoc, log: Logger) {
    this.#edge = edge;
    this.#dc = dc;
    this.#allowed = allowed;
    this.#health = health;
    this.#log = log;
  }

  route(ex: Exchange): void {
    const caller = peerIdentityOf(ex.req.socket);
    if (caller === undefined || !this.#allowed.has(caller)) {
      this.#log.warn({ dir: 'peer', caller: caller ?? null, path: ex.path }, 'refused a caller that is not a peer datacenter edge');
      ex.fail('FORBIDDEN', `only the edges of peer datacenters may call this listener (caller ${caller ?? 'unidentified'})`);
      return;
    }
    ex.fromPeerDc = true;
    if (ex.path === DC_HEALTH_PATH) {
      ex.reply(200, undefined, undefined, JSON_HEADERS, JSON.stringify(this.#health()));
      return;
    }
    const headers = ex.headers;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === DC_HOP_HEADER && headers[i + 1] === this.#dc) {
        ex.fail('LOOP_DETECTED', `the request came back to datacenter ${this.#dc} that forwarded it`);
        return;
      }
    }
    this.#edge.route(ex);
  }
}
