// The other datacenters' edges as mesh endpoints: one fixed endpoint per (service, datacenter),
// named `service@dc`, so a mesh client of their own gives cross-datacenter requests the same pooled
// mTLS connections, breakers, outlier ejection and deadlines as any other hop.
import { Endpoint, type EndpointSource, type ServiceEndpoints } from '../../mesh-proxy/discovery/endpoint.ts';
import { parseSpiffeId } from '../../mesh-proxy/identity/spiffe.ts';
import type { Instance } from '../../mesh-proxy/store/types.ts';

export interface PeerDatacenter {
  readonly dc: string;
  readonly address: string;
  readonly port: number;
  /** The peer edge's SPIFFE identity, checked on every connection. */
  readonly identity: string;
}

/** `catalog@dc2`: the remote client's name for catalog as served by dc2's edge. */
export function remoteName(service: string, dc: string): string {
  return `${service}@${dc}`;
}

export class PeerEdges implements EndpointSource {
  readonly peers: readonly PeerDatacenter[];
  readonly #endpoints: ReadonlyMap<string, Endpoint>;
  readonly #services = new Map<string, ServiceEndpoints>();

  constructor(peers: readonly PeerDatacenter[]) {
    this.peers = peers;
    const eps = new Map<string, Endpoint>();
    for (const p of peers) {
      const instance: Instance = {
        // The identity's service: what the mTLS connector checks the presented certificate against.
        service: parseSpiffeId(p.identity)?.service ?? 'edge',
        id: `edge@${p.dc}`,
        address: p.address,
        port: p.port,
        dc: p.dc,
        zone: '',
        metadata: {},
        identity: p.identity,
        // Peer listeners speak HTTP/2 by ALPN: gRPC crosses too, and requests multiplex.
        protocol: 'h2',
      };
      eps.set(p.dc, new Endpoint(instance));
    }
    this.#endpoints = eps;
  }

  get(name: string): ServiceEndpoints | undefined {
    let s = this.#services.get(name);
    if (s === undefined) {
      const at = name.lastIndexOf('@');
      const ep = at > 0 ? this.#endpoints.get(name.slice(at + 1)) : undefined;
      if (ep === undefined) return undefined;
      s = { service: name, endpoints: [ep] };
      this.#services.set(name, s);
    }
    return s;
  }

  endpoint(dc: string): Endpoint | undefined {
    return this.#endpoints.get(dc);
  }

  services(): IterableIterator<ServiceEndpoints> {
    return this.#services.values();
  }

  onChange(): void {
    // Fixed for the process's life: the peers come from the config file.
  }
}
