// The edge's server certificates, chosen by SNI: exact host names first, then "*.example.com"
// wildcards (one label deep, RFC 6125 §6.4.3), else the first certificate. The files are polled and
// a changed pair is loaded into fresh secure contexts without a restart; a pair that fails to load
// (half-written, mismatched key) is logged and counted, and the previous contexts keep serving.
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Counter } from 'prom-client';
import type { Logger } from '../../mesh-proxy/observe/log.ts';

export interface CertificateSpec {
  readonly hosts?: readonly string[];
  readonly cert: string;
  readonly key: string;
}

interface Loaded {
  readonly spec: CertificateSpec;
  readonly certFile: string;
  readonly keyFile: string;
  stamp: string;
  context: SecureContext;
  pem: { cert: Buffer; key: Buffer };
  notAfter: string;
}

export class CertificateStore {
  readonly #specs: readonly CertificateSpec[];
  readonly #baseDir: string;
  readonly #options: SecureContextOptions;
  readonly #log: Logger;
  readonly #reloads: Counter<'result'>;
  #loaded: Loaded[] = [];
  #exact = new Map<string, SecureContext>();
  #wildcard = new Map<string, SecureContext>();
  #timer: NodeJS.Timeout | undefined;
  #listeners: Array<() => void> = [];

  constructor(specs: readonly CertificateSpec[], baseDir: string, options: SecureContextOptions, log: Logger, reloads: Counter<'result'>) {
    this.#specs = specs;
    this.#baseDir = baseDir;
    this.#options = options;
    this.#log = log;
    this.#reloads = reloads;
  }

  /** Loads every certificate; throws (naming the file) when one cannot be used, as at start-up. */
  async load(): Promise<void> {
    const loaded: Loaded[] = [];
    for (const spec of this.#specs) loaded.push(await this.#loadOne(spec));
    this.#install(loaded);
  }

  /** The default certificate's PEM pair (the server's own options). */
  get defaultPem(): { cert: Buffer; key: Buffer } {
    return this.#loaded[0].pem;
  }

  /** Node's SNICallback: the context for `servername`, or the default. */
  readonly sni = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.contextFor(servername));
  };

  contextFor(servername: string): SecureContext {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.#wildcard.get(name.slice(dot + 1));
      if (wild !== undefined) return wild;
    }
    return this.#loaded[0].context;
  }

  /** Called after a reload swapped the contexts (the server refreshes its default). */
  onReload(listener: () => void): void {
    this.#listeners.push(listener);
  }

  startWatching(everyMs: number): void {
    this.#timer = setInterval(() => void this.#poll(), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  describe(): object[] {
    return this.#loaded.map((l) => ({ hosts: l.spec.hosts ?? [], cert: l.certFile, notAfter: l.notAfter }));
  }

  async #poll(): Promise<void> {
    let changed = false;
    const next: Loaded[] = [];
    for (const current of this.#loaded) {
      const stamp = await stampOf(current.certFile, current.keyFile);
      if (stamp === current.stamp) {
        next.push(current);
        continue;
      }
      try {
        next.push(await this.#loadOne(current.spec));
        changed = true;
      } catch (err) {
        // Seen once per change: the stamp is recorded so a broken file is not retried every poll.
        current.stamp = stamp;
        next.push(current);
        this.#reloads.inc({ result: 'rejected' });
        this.#log.error({ cert: current.certFile, error: (err as Error).message }, 'certificate reload failed; the previous certificate keeps serving');
      }
    }
    if (!changed) return;
    this.#install(next);
    this.#reloads.inc({ result: 'applied' });
    this.#log.info({ certificates: this.describe() }, 'certificates reloaded');
    for (const l of this.#listeners) l();
  }

  async #loadOne(spec: CertificateSpec): Promise<Loaded> {
    const certFile = resolve(this.#baseDir, spec.cert);
    const keyFile = resolve(this.#baseDir, spec.key);
    const stamp = await stampOf(certFile, keyFile);
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
    } catch (err) {
      throw new Error(`cannot read ${(err as NodeJS.ErrnoException).path ?? certFile} (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    let context: SecureContext;
    let notAfter: string;
    try {
      // createSecureContext checks that the key matches the certificate.
      context = createSecureContext({ ...this.#options, cert, key });
      notAfter = new Date(new X509Certificate(cert).validTo).toISOString();
    } catch (err) {
      throw new Error(`${certFile} / ${keyFile}: not a usable certificate and key (${(err as Error).message})`);
    }
    return { spec, certFile, keyFile, stamp, context, pem: { cert, key }, notAfter };
  }

  #install(loaded: Loaded[]): void {
    const exact = new Map<string, SecureContext>();
    const wildcard = new Map<string, SecureContext>();
    for (const l of loaded) {
      for (const h of l.spec.hosts ?? []) {
        const host = h.toLowerCase();
        if (host.startsWith('*.')) {
          if (!wildcard.has(host.slice(2))) wildcard.set(host.slice(2), l.context);
        } else if (!exact.has(host)) exact.set(host, l.context);
      }
    }
    this.#loaded = loaded;
    this.#exact = exact;
    this.#wildcard = wildcard;
  }
}

async function stampOf(certFile: string, keyFile: string): Promise<string> {
  const [a, b] = await Promise.all([stat(certFile).catch(() => undefined), stat(keyFile).catch(() => undefined)]);
  return `${a?.mtimeMs}:${a?.size}:${a?.ino}|${b?.mtimeMs}:${b?.size}:${b?.ino}`;
}
