// mTLS test material: a CA per suite in a temp dir (no committed secrets), workload certificates
// for any identity (valid, expired, from another CA), and one-shot HTTPS requests that present them.
import https from 'node:https';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { initCa, issueLeaf, type CaFiles, type Leaf } from '../../mesh-proxy/identity/ca.ts';
import { tempDir } from './cli.ts';

export interface TestCa {
  dir: string;
  ca: CaFiles;
  leaf(service: string, ttlMs?: number, namespace?: string): Leaf;
}

export async function createTestCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const dir = join(tempDir('meshgate-mtls-'), 'ca');
  const ca = await initCa(dir, trustDomain, false);
  return { dir, ca, leaf: (service, ttlMs = 3_600_000, namespace = 'default') => issueLeaf(ca, { service, namespace, ttlMs }) };
}

export interface TlsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The server certificate's serial on this (new) connection. */
  serverSerial: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * One request on a new TLS connection (agent: false) presenting `client` (or no certificate),
 * trusting `rootPem`. Resolves with the reply or rejects with the handshake error.
 */
export function tlsRequest(
  port: number,
  path: string,
  opts: { rootPem: string; client?: { keyPem: string; certChainPem: string }; method?: string; headers?: Record<string, string>; timeoutMs?: number },
): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    let serverSerial = '';
    const req = https.request(
      {
        host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: false,
        ca: opts.rootPem, key: opts.client?.keyPem, cert: opts.client?.certChainPem,
        headers: { host: 'mesh', ...opts.headers },
        checkServerIdentity: (_h: string, cert: PeerCertificate) => {
          serverSerial = cert.serialNumber.toLowerCase();
          return undefined;
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, serverSerial, json: () => JSON.parse(body) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample in Prometheus text, or 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
