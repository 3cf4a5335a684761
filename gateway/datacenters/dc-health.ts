// What each datacenter can serve: this one's from its own endpoint view (breakers, ejections,
// health checks), the peers' from their edges, polled over mTLS at the peer listener's health path.
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import type { EndpointSource } from '../../mesh-proxy/discovery/endpoint.ts';
import type { MeshClient } from '../../mesh-proxy/client/mesh-client.ts';
import { identityInSan } from '../../mesh-proxy/identity/spiffe.ts';
import type { WorkloadIdentity } from '../../mesh-proxy/identity/workload-identity.ts';
import type { Logger } from '../../mesh-proxy/observe/log.ts';
import type { Health } from './failover.ts';
import type { PeerDatacenter } from './peer-edges.ts';

/** Served by every peer listener; what a peer datacenter's edge polls. */
export const DC_HEALTH_PATH = '/.well-known/meshgate/dc-health';

export interface DcHealthDoc {
  readonly dc: string;
  readonly services: Record<string, Health>;
}

/** This datacenter's view of a service: its own instances, and how many are available now. */
export function localHealth(service: string, dc: string, cache: EndpointSource, client: MeshClient): Health {
  const eps = cache.get(service)?.endpoints ?? [];
  const svc = client.service(service);
  let total = 0;
  let healthy = 0;
  for (const ep of eps) {
    if (ep.instance.dc !== dc) continue;
    total++;
    if (svc.breakerOf(ep).state !== 'open' && !svc.outlier.isEjected(ep)) healthy++;
  }
  return { healthy, total };
}

export interface PeerState {
  readonly dc: string;
  up: boolean;
  /** When the last poll answered (ms since epoch); 0: never. */
  lastSeen: number;
  error: string | undefined;
  services: Record<string, Health>;
}

export class PeerHealthPoller {
  readonly states: readonly PeerState[];
  readonly #peers: readonly PeerDatacenter[];
  readonly #identity: WorkloadIdentity;
  readonly #log: Logger;
  readonly #timeoutMs: number;

  constructor(peers: readonly PeerDatacenter[], identity: WorkloadIdentity, timeoutMs: number, log: Logger) {
    this.#peers = peers;
    this.#identity = identity;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.states = peers.map((p) => ({ dc: p.dc, up: false, lastSeen: 0, error: 'not polled yet', services: {} }));
  }

  state(dc: string): PeerState | undefined {
    return this.states.find((s) => s.dc === dc);
  }

  async pollAll(): Promise<void> {
    await Promise.all(this.#peers.map((p, i) => this.#poll(p, this.states[i] as PeerState)));
  }

  async #poll(peer: PeerDatacenter, state: PeerState): Promise<void> {
    try {
      const doc = await this.#fetch(peer);
      if (!state.up) this.#log.info({ dc: peer.dc }, 'peer datacenter reachable');
      state.up = true;
      state.lastSeen = Date.now();
      state.error = undefined;
      state.services = doc.services;
    } catch (err) {
      if (state.up) this.#log.warn({ dc: peer.dc, err: (err as Error).message }, 'peer datacenter unreachable: its services count as down');
      state.up = false;
      state.error = (err as Error).message;
      state.services = {};
    }
  }

  #fetch(peer: PeerDatacenter): Promise<DcHealthDoc> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: peer.address,
          port: peer.port,
          path: DC_HEALTH_PATH,
          method: 'GET',
          agent: false,
          secureContext: this.#identity.clientContext,
          rejectUnauthorized: true,
          servername: '',
          checkServerIdentity: (_h: string, cert: PeerCertificate) => {
            const got = identityInSan(cert.subjectaltname);
            return got === peer.identity ? undefined : new Error(`peer ${peer.dc} presented identity ${got ?? 'none'}, expected ${peer.identity}`);
          },
          timeout: this.#timeoutMs,
          headers: { host: `${peer.address}:${peer.port}` },
        } as https.RequestOptions,
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (body.length < 1 << 20) body += c;
          });
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`peer ${peer.dc} answered ${res.statusCode}`));
            try {
              const doc = JSON.parse(body) as DcHealthDoc;
              if (doc === null || typeof doc !== 'object' || typeof doc.services !== 'object') throw new Error('not a health document');
              resolve(doc);
            } catch (err) {
              reject(new Error(`peer ${peer.dc} sent an unreadable health document: ${(err as Error).message}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`peer ${peer.dc} did not answer within ${this.#timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }
}
