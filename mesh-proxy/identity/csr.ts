// Certificate signing requests. The proxy builds one with node-forge from a key made by node:crypto
// (the key never leaves the proxy). The signer reads one WITHOUT forge (DESIGN: never parse untrusted
// DER with forge): a bounded DER walk finds the request info, its public key and the signature, and
// OpenSSL (node:crypto) parses the key and checks the signature (proof of possession, RFC 2986 §3).
import { createPublicKey, generateKeyPair, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateKeyPairAsync = promisify(generateKeyPair);

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
}

/**
 * A fresh RSA key, made on libuv's thread pool: generating one takes ~200 ms of CPU, which on the
 * event loop would stall every request in flight at each rotation.
 */
export async function newRsaKey(): Promise<{ keyPem: string; publicKey: KeyObject }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

/** A fresh RSA key and a CSR for it naming the service (the signer decides the identity). */
export async function createKeyAndCsr(service: string): Promise<KeyAndCsr> {
  const { keyPem, publicKey } = await newRsaKey();
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject([{ name: 'commonName', value: service }]);
  csr.sign(forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { keyPem, csrPem: forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n') };
}

export class CsrError extends Error {
  readonly code = 'BAD_CSR';
}

const MAX_CSR_BYTES = 16 * 1024;
// sha256WithRSAEncryption, 1.2.840.113549.1.1.11
const SHA256_RSA = Buffer.from('06092a864886f70d01010b', 'hex');

interface Tlv {
  tag: number;
  /** First byte of the element (tag). */
  start: number;
  /** First and one-past-last byte of the contents. */
  body: number;
  end: number;
}

function readTlv(buf: Buffer, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new CsrError('truncated DER');
  const tag = buf[at];
  let len = buf[at + 1];
  let body = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || body + n > limit) throw new CsrError('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[body + i];
    body += n;
  }
  const end = body + len;
  if (end > limit) throw new CsrError('DER element overruns its container');
  return { tag, start: at, body, end };
}

/** Checks a PEM CSR's self-signature and returns its public key (RSA ≥ 2048 bits only). */
export function readCsr(pem: string): KeyObject {
  if (typeof pem !== 'string' || pem.length > MAX_CSR_BYTES * 2) throw new CsrError('the CSR must be a PEM string');
  const m = /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
  if (m === null) throw new CsrError('not a PEM certificate request');
  const der = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw new CsrError('the CSR is empty or too large');
  const outer = readTlv(der, 0, der.length);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new CsrError('not a DER SEQUENCE');
  const info = readTlv(der, outer.body, outer.end);
  const alg = readTlv(der, info.end, outer.end);
  const sig = readTlv(der, alg.end, outer.end);
  if (info.tag !== 0x30 || alg.tag !== 0x30 || sig.tag !== 0x03 || sig.end !== outer.end) throw new CsrError('not a certification request');
  const algOid = readTlv(der, alg.body, alg.end);
  if (!der.subarray(algOid.start, algOid.end).equals(SHA256_RSA)) throw new CsrError('the CSR must be signed with sha256WithRSAEncryption');
  const version = readTlv(der, info.body, info.end);
  const subject = readTlv(der, version.end, info.end);
  const spki = readTlv(der, subject.end, info.end);
  if (version.tag !== 0x02 || subject.tag !== 0x30 || spki.tag !== 0x30) throw new CsrError('malformed request info');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der.subarray(spki.start, spki.end), format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('the CSR public key cannot be read');
  }
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new CsrError('the CSR key must be RSA, at least 2048 bits');
  if (der[sig.body] !== 0) throw new CsrError('malformed signature');
  const ok = verify('sha256', der.subarray(info.start, info.end), key, der.subarray(sig.body + 1, sig.end));
  if (!ok) throw new CsrError('the CSR signature does not verify');
  return key;
}

/** The key as forge needs it to place in a certificate: re-encoded by OpenSSL, so forge reads canonical PEM. */
export function forgePublicKey(key: KeyObject): forge.pki.PublicKey {
  return forge.pki.publicKeyFromPem(key.export({ type: 'spki', format: 'pem' }).toString());
}
