// The gateway's mesh client reads local endpoints from the store-fed cache and the peer
// datacenters' edges (`service@dc`) from PeerEdges, through one EndpointSource.
import type { EndpointSource, ServiceEndpoints } from '../../mesh-proxy/discovery/endpoint.ts';
import type { PeerEdges } from './peer-edges.ts';

export class CompositeSource implements EndpointSource {
  readonly #local: EndpointSource;
  readonly #peers: PeerEdges;

  constructor(local: EndpointSource, peers: PeerEdges) {
    this.#local = local;
    this.#peers = peers;
  }

  get(service: string): ServiceEndpoints | undefined {
    return service.includes('@') ? this.#peers.get(service) : this.#local.get(service);
  }

  *services(): IterableIterator<ServiceEndpoints> {
    yield* this.#local.services();
    yield* this.#peers.services();
  }

  onChange(listener: (service: string) => void): void {
    this.#local.onChange(listener);
  }
}
