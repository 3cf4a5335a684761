// Tokens already verified, so a client that sends the same token on every request pays for the
// signature check once (Envoy's jwt_authn jwt_cache_config does the same). The key is the token's
// exact bytes, so nothing about it can differ from what was verified; the time claims are
// re-checked on every hit, a new key set (a JWKS refetch) invalidates every entry, and an entry is
// verified again after `maxAgeMs` (the key set's TTL), so key lookups — which refresh a stale key
// set — keep happening. Bounded: the oldest entry is dropped when full (Map keeps insertion order).
export class VerifiedTokens {
  readonly #max: number;
  readonly #skewMs: number;
  readonly #maxAgeMs: number;
  readonly #entries = new Map<string, { payload: Readonly<Record<string, unknown>>; expMs: number; nbfMs: number; version: number; staleAt: number }>();

  constructor(max: number, clockToleranceSeconds: number, maxAgeMs: number) {
    this.#max = max;
    this.#skewMs = clockToleranceSeconds * 1000;
    this.#maxAgeMs = maxAgeMs;
  }

  get(token: string, version: number): Readonly<Record<string, unknown>> | undefined {
    if (this.#max === 0) return undefined;
    const e = this.#entries.get(token);
    if (e === undefined) return undefined;
    const now = Date.now();
    if (e.version !== version || now > e.staleAt || now > e.expMs + this.#skewMs || now < e.nbfMs - this.#skewMs) {
      this.#entries.delete(token);
      return undefined;
    }
    return e.payload;
  }

  /** Remembers a verified payload; returns it frozen (the object every later hit hands out). */
  add(token: string, payload: Record<string, unknown>, version: number): Readonly<Record<string, unknown>> {
    const frozen = Object.freeze(payload);
    if (this.#max === 0) return frozen;
    // Without exp a token is remembered for five minutes at most.
    const expMs = typeof payload.exp === 'number' ? payload.exp * 1000 : Date.now() + 300_000;
    const nbfMs = typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0;
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(token, { payload: frozen, expMs, nbfMs, version, staleAt: Date.now() + this.#maxAgeMs });
    return frozen;
  }
}
