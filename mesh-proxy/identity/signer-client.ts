// The client side of `meshgate ca serve`: a fresh key and CSR, POST /v1/sign with the bootstrap
// token. The signer is trusted only if it chains to the mesh root AND presents the reserved signer
// identity, so a workload holding an ordinary mesh certificate cannot pose as the CA and collect
// the token.
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { createKeyAndCsr } from './csr.ts';
import { identityInSan, SIGNER_NAMESPACE, SIGNER_SERVICE, spiffeId } from './spiffe.ts';

export interface SignedLeaf {
  certChainPem: string;
  keyPem: string;
  rootPem: string;
}

export interface SignRequest {
  url: string;
  token: string;
  rootPem: string;
  trustDomain: string;
  service: string;
  namespace: string;
  ttl: string;
  timeoutMs?: number;
}

const MAX_REPLY_BYTES = 256 * 1024;

export async function requestLeaf(r: SignRequest): Promise<SignedLeaf> {
  const { keyPem, csrPem } = await createKeyAndCsr(r.service);
  const body = JSON.stringify({ csr: csrPem, service: r.service, namespace: r.namespace, ttl: r.ttl });
  const signer = spiffeId(r.trustDomain, SIGNER_NAMESPACE, SIGNER_SERVICE);
  const url = new URL('/v1/sign', r.url);
  const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        ca: r.rootPem,
        minVersion: 'TLSv1.2',
        agent: false,
        timeout: r.timeoutMs ?? 5000,
        headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        checkServerIdentity: (_host: string, cert: PeerCertificate) => {
          const got = identityInSan(cert.subjectaltname);
          return got === signer ? undefined : new Error(`the signer presented identity ${got ?? 'none'}, expected ${signer}`);
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          if (text.length > MAX_REPLY_BYTES) req.destroy(new Error('the signer reply is too large'));
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`the signer did not answer within ${r.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
  let json: { certChain?: unknown; root?: unknown; error?: { code?: string; message?: string } };
  try {
    json = JSON.parse(reply.text) as typeof json;
  } catch {
    throw new Error(`the signer answered ${reply.status} with a body that is not JSON`);
  }
  if (reply.status !== 200 || typeof json.certChain !== 'string' || typeof json.root !== 'string') {
    throw new Error(`the signer refused (${reply.status} ${json.error?.code ?? ''}: ${json.error?.message ?? 'no certificate'})`);
  }
  return { certChainPem: json.certChain, keyPem, rootPem: json.root };
}
