// This process's mesh identity: its workload certificate, key and the mesh root, from one of three
// sources (files written by `meshgate ca issue`, a signer reached with a CSR, or a CA directory held
// locally), renewed at 2/3 of the leaf's lifetime without a restart. Consumers read the current
// material and TLS contexts, built once per rotation (never per request or per connection), and
// hear about rotations through onRotate(). A failed renewal is retried with backoff while the old
// certificate serves until it expires (DESIGN: existing certs serve while the CA is unreachable).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import tls from 'node:tls';
import { Gauge, type Counter } from 'prom-client';
import type { MeshConfig } from '../../config/schema.ts';
import { parseDuration } from '../../config/duration.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import { backoffMs } from '../resilience/backoff.ts';
// ca.ts, csr.ts and signer-client.ts bring node-forge (~12 MB resident): imported only by the
// identity sources that sign, so a proxy with file identities (or none) never loads it.
import type { CaFiles } from './ca.ts';
import { identityInSan, spiffeId } from './spiffe.ts';

export interface IdentityMaterial {
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly rootPem: string;
  readonly identity: string;
  readonly serial: string;
  readonly notAfter: Date;
  /** Local time it was obtained: rotation is due at 2/3 of [obtainedAt, notAfter]. */
  readonly obtainedAt: number;
}

export type TlsDirection = 'inbound' | 'outbound';
/** Bounded reasons for refused handshakes (metric label values). */
export type HandshakeFailure = 'no-certificate' | 'unknown-ca' | 'expired' | 'bad-certificate' | 'identity-mismatch' | 'protocol' | 'other';

export class IdentityError extends Error {
  readonly code = 'IDENTITY_UNAVAILABLE';
}

const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;
const ROTATE_AT = 2 / 3;

export interface WorkloadIdentityOptions {
  mesh: MeshConfig;
  /** The service this identity names (the sidecar's service, or the gateway's mesh service). */
  service: string;
  log: Logger;
  metrics: Metrics;
}

export class WorkloadIdentity {
  /** The SPIFFE identity this process must hold. */
  readonly id: string;
  readonly trustDomain: string;
  readonly namespace: string;
  /** Bumped on every rotation: connectors rebuild when it changed. */
  generation = 0;
  readonly #o: WorkloadIdentityOptions;
  readonly #listeners: Array<(m: IdentityMaterial) => void> = [];
  readonly #handshakeFailures: Counter<'direction' | 'reason'>;
  readonly #renewals: Counter<'result'>;
  #current: IdentityMaterial | undefined;
  #clientContext: tls.SecureContext | undefined;
  #ca: CaFiles | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #fileStamp = '';
  #failures = 0;
  #stopped = false;
  #lastError: string | undefined;

  constructor(opts: WorkloadIdentityOptions) {
    this.#o = opts;
    this.trustDomain = opts.mesh.trustDomain;
    this.namespace = opts.mesh.namespace;
    this.id = spiffeId(this.trustDomain, this.namespace, opts.service);
    const m = opts.metrics;
    const self = this;
    new Gauge({
      name: 'meshgate_identity_cert_expiry_timestamp_seconds',
      help: "Unix time at which this proxy's current workload certificate expires.",
      registers: [m.registry],
      // Gateway workers each hold a certificate: the cluster-wide value is the soonest expiry, not a sum.
      aggregator: 'min',
      collect(this: Gauge) {
        if (self.#current !== undefined) this.set(self.#current.notAfter.getTime() / 1000);
      },
    });
    this.#handshakeFailures = m.counter('meshgate_tls_handshake_failures_total', 'mTLS handshakes refused, by direction and reason.', ['direction', 'reason']);
    this.#renewals = m.counter('meshgate_identity_renewals_total', 'Workload certificate renewals attempted, by result (ok, failed).', ['result']);
  }

  get current(): IdentityMaterial {
    if (this.#current === undefined) throw new IdentityError('the mesh identity has not been obtained yet');
    return this.#current;
  }

  /** Client-side context (our cert + key, trusting only the mesh root); rebuilt on rotation. */
  get clientContext(): tls.SecureContext {
    if (this.#clientContext === undefined) throw new IdentityError('the mesh identity has not been obtained yet');
    return this.#clientContext;
  }

  /** Options for tls.Server#setSecureContext / createServer: the same material, server side. */
  serverContextOptions(): tls.SecureContextOptions {
    const m = this.current;
    return { key: m.keyPem, cert: m.certChainPem, ca: m.rootPem, minVersion: 'TLSv1.2' };
  }

  onRotate(listener: (m: IdentityMaterial) => void): void {
    this.#listeners.push(listener);
  }

  recordHandshakeFailure(direction: TlsDirection, reason: HandshakeFailure): void {
    this.#handshakeFailures.inc({ direction, reason });
  }

  /** Obtains the first certificate; a failure here stops the process from starting. */
  async start(): Promise<void> {
    const mesh = this.#o.mesh;
    if (mesh.caDir !== undefined) {
      const { loadCa } = await import('./ca.ts');
      this.#ca = await loadCa(mesh.caDir).catch((err: NodeJS.ErrnoException) => {
        throw new IdentityError(`cannot read the CA in ${mesh.caDir} (${err.code ?? err.message}); create it with \`meshgate ca init --dir ${mesh.caDir}\``);
      });
      if (this.#ca.trustDomain !== this.trustDomain) {
        throw new IdentityError(`the CA in ${mesh.caDir} is for trust domain ${this.#ca.trustDomain}, but mesh.trustDomain is ${this.trustDomain}`);
      }
    }
    this.#install(await this.#obtain());
    this.#schedule();
    if (mesh.identity !== undefined) {
      // Files are re-read when they change (an operator or cert-manager replaced them).
      this.#poll = setInterval(() => void this.#checkFiles(), parseDuration(mesh.checkEvery));
      this.#poll.unref();
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
  }

  /** The admin API's view (GET /identity). */
  describe(): object {
    const m = this.#current;
    return {
      identity: this.id,
      source: this.#o.mesh.caDir !== undefined ? 'caDir' : this.#o.mesh.signer !== undefined ? 'signer' : 'files',
      serial: m?.serial,
      notAfter: m?.notAfter.toISOString(),
      renewAt: m ? new Date(this.#renewAt(m)).toISOString() : undefined,
      rotations: this.generation,
      lastError: this.#lastError,
    };
  }

  async #obtain(): Promise<IdentityMaterial> {
    const mesh = this.#o.mesh;
    const now = Date.now();
    if (this.#ca !== undefined) {
      const [{ signLeaf }, { forgePublicKey, newRsaKey }] = await Promise.all([import('./ca.ts'), import('./csr.ts')]);
      const key = await newRsaKey();
      const leaf = signLeaf(this.#ca, forgePublicKey(key.publicKey), { service: this.#o.service, namespace: this.namespace, ttlMs: parseDuration(mesh.ttl) });
      return this.#check(leaf.certChainPem, key.keyPem, this.#ca.rootCert, now);
    }
    if (mesh.signer !== undefined) {
      const { requestLeaf } = await import('./signer-client.ts');
      const rootPem = await readFile(mesh.signer.ca, 'utf8');
      const leaf = await requestLeaf({
        url: mesh.signer.url, token: mesh.signer.token, rootPem, trustDomain: this.trustDomain,
        service: this.#o.service, namespace: this.namespace, ttl: mesh.ttl,
      });
      return this.#check(leaf.certChainPem, leaf.keyPem, rootPem, now);
    }
    const files = mesh.identity!;
    // Stamped before reading: a write landing in between is seen by the next check.
    this.#fileStamp = await this.#stampOfFiles();
    const [cert, key, root] = await Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8'), readFile(files.ca, 'utf8')]);
    return this.#check(cert, key, root, now);
  }

  /** Rejects material that would fail every handshake: wrong identity, key mismatch, expired, untrusted. */
  #check(certChainPem: string, keyPem: string, rootPem: string, obtainedAt: number): IdentityMaterial {
    let leaf: X509Certificate;
    let root: X509Certificate;
    try {
      leaf = new X509Certificate(certChainPem);
      root = new X509Certificate(rootPem);
    } catch (err) {
      throw new IdentityError(`the workload certificate or the root is not a readable PEM certificate (${(err as Error).message})`);
    }
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new IdentityError('the private key does not match the workload certificate');
    const identity = identityInSan(leaf.subjectAltName);
    if (identity !== this.id) throw new IdentityError(`the workload certificate names ${identity ?? 'no SPIFFE identity'}, expected ${this.id}`);
    const notAfter = new Date(leaf.validTo);
    if (notAfter.getTime() <= Date.now()) throw new IdentityError(`the workload certificate expired at ${notAfter.toISOString()}`);
    // The chain must lead to the root peers trust, or every handshake would be refused.
    const chain = certChainPem.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN CERTIFICATE'));
    const issuer = chain.length > 1 ? new X509Certificate(chain[chain.length - 1]) : leaf;
    if (!issuer.verify(root.publicKey) && !(chain.length > 1 && root.fingerprint256 === issuer.fingerprint256)) {
      throw new IdentityError('the workload certificate does not chain to the mesh root');
    }
    return { certChainPem, keyPem, rootPem, identity, serial: leaf.serialNumber.toLowerCase(), notAfter, obtainedAt };
  }

  #install(m: IdentityMaterial): void {
    this.#clientContext = tls.createSecureContext({ key: m.keyPem, cert: m.certChainPem, ca: m.rootPem, minVersion: 'TLSv1.2' });
    const first = this.#current === undefined;
    this.#current = m;
    this.#lastError = undefined;
    if (first) {
      this.#o.log.info({ identity: m.identity, serial: m.serial, notAfter: m.notAfter.toISOString() }, 'mesh identity obtained');
      return;
    }
    this.generation++;
    this.#o.log.info({ identity: m.identity, serial: m.serial, notAfter: m.notAfter.toISOString() }, 'mesh identity rotated');
    for (const l of this.#listeners) {
      try {
        l(m);
      } catch (err) {
        this.#o.log.error({ err: (err as Error).message }, 'applying a rotated certificate failed');
      }
    }
  }

  #renewAt(m: IdentityMaterial): number {
    return m.obtainedAt + (m.notAfter.getTime() - m.obtainedAt) * ROTATE_AT;
  }

  #schedule(delayMs?: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    const m = this.#current!;
    const wait = delayMs ?? Math.max(0, this.#renewAt(m) - Date.now());
    // setTimeout's limit is 2^31-1 ms (~24.8 days): a longer wait is taken in steps.
    this.#timer = setTimeout(() => void this.#renew(), Math.min(wait, 2 ** 31 - 1));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#stopped) return;
    if (Date.now() < this.#renewAt(this.#current!) - 1 && this.#failures === 0) {
      this.#schedule();
      return;
    }
    try {
      const m = await this.#obtain();
      if (this.#stopped) return;
      // Files that were not replaced yet: nothing new to install; keep watching them.
      if (m.serial !== this.#current!.serial) this.#install(m);
      this.#failures = 0;
      this.#renewals.inc({ result: 'ok' });
      this.#schedule(this.#o.mesh.identity !== undefined && m.serial === this.#current!.serial ? this.#retryDelay() : undefined);
    } catch (err) {
      this.#failures++;
      this.#renewals.inc({ result: 'failed' });
      this.#lastError = (err as Error).message;
      const m = this.#current!;
      const delay = this.#retryDelay();
      this.#o.log.warn(
        { err: this.#lastError, attempt: this.#failures, retryInMs: delay, expiresInMs: m.notAfter.getTime() - Date.now() },
        'renewing the mesh certificate failed; the current one serves until it expires',
      );
      this.#schedule(delay);
    }
  }

  /** Backoff with jitter, but never so long that the retry lands after the certificate expired. */
  #retryDelay(): number {
    const left = this.#current!.notAfter.getTime() - Date.now();
    const d = Math.max(RETRY_BASE_MS / 2, backoffMs(this.#failures, RETRY_BASE_MS, RETRY_MAX_MS));
    return left > 0 ? Math.min(d, Math.max(RETRY_BASE_MS / 2, left / 4)) : d;
  }

  async #stampOfFiles(): Promise<string> {
    const f = this.#o.mesh.identity!;
    const s = await Promise.all([f.cert, f.key, f.ca].map((p) => stat(p)));
    return s.map((x) => `${x.mtimeMs}:${x.size}`).join('|');
  }

  async #checkFiles(): Promise<void> {
    if (this.#stopped) return;
    try {
      if ((await this.#stampOfFiles()) === this.#fileStamp) return;
    } catch {
      return; // mid-replacement; the next check sees the finished files
    }
    try {
      const m = await this.#obtain();
      if (m.serial !== this.#current!.serial || m.rootPem !== this.#current!.rootPem) {
        this.#install(m);
        this.#schedule();
      }
    } catch (err) {
      // A half-written or mismatched pair (cert replaced before key): keep serving the old one.
      // Retried when the files change again, not on every check.
      this.#lastError = (err as Error).message;
      this.#o.log.warn({ err: this.#lastError }, 'the replaced certificate files are not usable yet; keeping the current certificate');
    }
  }
}
