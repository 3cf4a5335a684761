// meshgate's own certificate authority. node-forge builds and signs certificates; keys come from
// node:crypto; peers are verified by Node's TLS (OpenSSL), never by parsing untrusted DER with forge.
// A leaf carries its workload identity as a SPIFFE URI SAN, spiffe://<trust-domain>/ns/<ns>/sa/<service>.
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { identityInSan, spiffeId } from './spiffe.ts';

export interface CaFiles {
  /** The root: trust anchor every proxy is given. */
  rootCert: string;
  rootKey: string;
  /** The signing CA (the intermediate when there is one, else the root). */
  signerCert: string;
  signerKey: string;
  trustDomain: string;
}

const ROOT_YEARS = 10;
const INTERMEDIATE_YEARS = 2;

function rsaKey(): { keyPem: string; forgeKey: forge.pki.rsa.PrivateKey; forgePublic: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const forgePublic = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()) as forge.pki.rsa.PublicKey;
  return { keyPem, forgeKey, forgePublic };
}

function serial(): string {
  // Positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, non-negative).
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function caCertificate(name: string, pub: forge.pki.PublicKey, years: number, issuer: { cert?: forge.pki.Certificate; key: forge.pki.PrivateKey }, pathLen: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + years * 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: name }, { name: 'organizationName', value: 'meshgate' }];
  cert.setSubject(subject);
  cert.setIssuer(issuer.cert ? issuer.cert.subject.attributes : subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: pathLen, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(issuer.key as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return cert;
}

/** Creates a root CA (and optionally an intermediate that signs leaves) in `dir`; keys are 0600. */
export async function initCa(dir: string, trustDomain: string, withIntermediate: boolean): Promise<CaFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const root = rsaKey();
  const rootCert = caCertificate(`meshgate root CA (${trustDomain})`, root.forgePublic, ROOT_YEARS, { key: root.forgeKey }, withIntermediate ? 1 : 0);
  const files: CaFiles = {
    rootCert: toPem(rootCert),
    rootKey: root.keyPem,
    signerCert: toPem(rootCert),
    signerKey: root.keyPem,
    trustDomain,
  };
  if (withIntermediate) {
    const mid = rsaKey();
    const midCert = caCertificate(`meshgate intermediate CA (${trustDomain})`, mid.forgePublic, INTERMEDIATE_YEARS, { cert: rootCert, key: root.forgeKey }, 0);
    files.signerCert = toPem(midCert);
    files.signerKey = mid.keyPem;
  }
  await writeSecret(join(dir, 'root.key'), files.rootKey);
  await writeFile(join(dir, 'root.pem'), files.rootCert);
  if (withIntermediate) {
    await writeSecret(join(dir, 'intermediate.key'), files.signerKey);
    await writeFile(join(dir, 'intermediate.pem'), files.signerCert);
  }
  await writeFile(join(dir, 'ca.json'), JSON.stringify({ trustDomain, intermediate: withIntermediate }, null, 2));
  return files;
}

export async function loadCa(dir: string): Promise<CaFiles> {
  const meta = JSON.parse(await readFile(join(dir, 'ca.json'), 'utf8')) as { trustDomain: string; intermediate: boolean };
  const rootCert = await readFile(join(dir, 'root.pem'), 'utf8');
  const rootKey = await readFile(join(dir, 'root.key'), 'utf8');
  if (!meta.intermediate) return { rootCert, rootKey, signerCert: rootCert, signerKey: rootKey, trustDomain: meta.trustDomain };
  return {
    rootCert,
    rootKey,
    signerCert: await readFile(join(dir, 'intermediate.pem'), 'utf8'),
    signerKey: await readFile(join(dir, 'intermediate.key'), 'utf8'),
    trustDomain: meta.trustDomain,
  };
}

export interface LeafOptions {
  service: string;
  namespace: string;
  ttlMs: number;
}

export interface Leaf {
  /** The leaf followed by the intermediate, if any: what a TLS endpoint presents. */
  certChainPem: string;
  keyPem: string;
  identity: string;
  serial: string;
  notAfter: Date;
}

/** Issues a short-lived leaf for a workload, usable as TLS server and client certificate. */
export function issueLeaf(ca: CaFiles, opts: LeafOptions): Leaf {
  const key = rsaKey();
  return { ...signLeaf(ca, key.forgePublic, opts), keyPem: key.keyPem };
}

/**
 * Signs a leaf for a public key held elsewhere (a CSR's): the key never reaches the CA. The public
 * key must be RSA (what forge can place in a certificate); it was re-encoded by OpenSSL first.
 */
export function signLeaf(ca: CaFiles, publicKey: forge.pki.PublicKey, opts: LeafOptions): Omit<Leaf, 'keyPem'> {
  const signer = forge.pki.certificateFromPem(ca.signerCert); // our own CA file, not peer input
  const identity = spiffeId(ca.trustDomain, opts.namespace, opts.service);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  // Backdated a minute for clock skew between hosts.
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + opts.ttlMs);
  cert.setSubject([{ name: 'commonName', value: opts.service }]);
  cert.setIssuer(signer.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: identity }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.signerKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  const leafPem = toPem(cert);
  const chain = ca.signerCert === ca.rootCert ? leafPem : leafPem + ca.signerCert;
  return { certChainPem: chain, identity, serial: cert.serialNumber, notAfter: cert.validity.notAfter };
}

/** The SPIFFE identity in a certificate's URI SANs (read with Node's X509Certificate). */
export function identityOf(pem: string | Buffer): string | undefined {
  return identityInSan(new X509Certificate(pem).subjectAltName);
}

/** PEM with LF line endings (forge writes CRLF). */
function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

async function writeSecret(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600); // an existing file keeps its mode on write
}
