// A remote JSON Web Key Set, fetched once and kept. jose's createRemoteJWKSet was the first choice,
// but once its cache is stale it awaits a refetch on the request path and throws when the IdP is
// down, so every request would wait out the fetch timeout and then fail. Here stale keys keep
// serving while one background refetch runs; an unknown `kid` (a key rotation) refetches inline, at
// most once per cooldown, so a flood of forged kids cannot hammer the IdP; fetches have a timeout
// and a size cap and never follow redirects.
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWSHeaderParameters, type FlattenedJWSInput } from 'jose';
import { Agent, request } from 'undici';

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

export interface JwksOptions {
  readonly url: URL;
  readonly ttlMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly onError: (err: Error) => void;
}

/** No key set could be fetched yet (or it never parsed): not the token's fault. */
export class JwksUnavailableError extends Error {
  readonly code = 'JWKS_UNAVAILABLE';
}

export class JwksCache {
  readonly #o: JwksOptions;
  readonly #agent: Agent;
  #keys: KeyResolver | undefined;
  /** Bumped on every key set fetched: tokens verified against an older set are verified again. */
  version = 0;
  #fetchedAt = -Infinity;
  #attemptedAt = -Infinity;
  #pending: Promise<void> | undefined;
  #closed = false;
  /** Completed fetch attempts (for tests and logs). */
  fetches = 0;

  constructor(o: JwksOptions) {
    this.#o = o;
    this.#agent = new Agent({ keepAliveTimeout: 10_000, connect: { timeout: o.timeoutMs } });
  }

  /** A jose key resolver (the `key` argument of jwtVerify). */
  readonly resolve = async (header: JWSHeaderParameters, token: FlattenedJWSInput) => {
    const now = Date.now();
    if (this.#keys === undefined) {
      if (now - this.#attemptedAt < this.#o.cooldownMs && this.#pending === undefined) throw new JwksUnavailableError('signing keys unavailable');
      await this.refresh();
      if (this.#keys === undefined) throw new JwksUnavailableError('signing keys unavailable');
    } else if (now - this.#fetchedAt > this.#o.ttlMs && now - this.#attemptedAt >= this.#o.cooldownMs) {
      void this.refresh(); // stale-while-revalidate: this request uses the keys we have
    }
    try {
      return await this.#keys!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || Date.now() - this.#attemptedAt < this.#o.cooldownMs) throw err;
      await this.refresh();
      return this.#keys!(header, token);
    }
  };

  /** Fetches the key set once (concurrent callers share the fetch); never rejects. */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#pending ??= this.#fetch()
      .then((keys) => {
        this.#keys = keys;
        this.#fetchedAt = Date.now();
        this.version++;
      })
      .catch((err: Error) => this.#o.onError(err))
      .finally(() => {
        this.#attemptedAt = Date.now();
        this.fetches++;
        this.#pending = undefined;
      });
    return this.#pending;
  }

  async #fetch(): Promise<KeyResolver> {
    this.#attemptedAt = Date.now();
    const o = this.#o;
    const res = await request(o.url, {
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json' },
      dispatcher: this.#agent,
      signal: AbortSignal.timeout(o.timeoutMs),
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
    });
    if (res.statusCode !== 200) {
      res.body.resume();
      throw new Error(`JWKS ${o.url.href} answered ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length'] ?? -1);
    if (declared > o.maxBytes) {
      res.body.destroy();
      throw new Error(`JWKS ${o.url.href} is larger than ${o.maxBytes} bytes`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > o.maxBytes) {
        res.body.destroy();
        throw new Error(`JWKS ${o.url.href} is larger than ${o.maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JSONWebKeySet;
    return createLocalJWKSet(doc); // validates the document's shape
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pending;
    await this.#agent.close();
  }
}
