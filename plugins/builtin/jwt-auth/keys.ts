// Builds jwt-auth's key resolver from its config: local public keys (PEM files, JWKs), a remote
// JWKS, and HMAC secrets. The resolver picks the key by the token's alg *family*: an HS* token is
// only ever checked against a configured secret and an RS/ES/EdDSA token only against public keys,
// so a public key can never serve as an HMAC secret (the alg-confusion attack, RFC 8725 §2.1).
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWK, type JWSHeaderParameters } from 'jose';
import { PluginError } from '../../errors.ts';
import { HMAC_ALGORITHMS } from './schema.ts';
import type { JwksCache } from './jwks-cache.ts';

export type KeyConfig = { pem: string; kid?: string } | { jwk: Record<string, unknown> } | { secret: string; kid?: string };

type PublicResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<unknown>;

export interface KeySources {
  readonly keys: readonly KeyConfig[];
  readonly jwks: JwksCache | undefined;
  readonly algorithms: readonly string[];
  readonly baseDir: string;
}

const HMAC = new Set<string>(HMAC_ALGORITHMS);

function invalid(message: string): PluginError {
  return new PluginError('PLUGIN_CONFIG_INVALID', message);
}

function publicJwk(k: KeyConfig, baseDir: string): JWK {
  if ('pem' in k) {
    const file = isAbsolute(k.pem) ? k.pem : resolve(baseDir, k.pem);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw invalid(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    if (text.includes('PRIVATE KEY')) throw invalid(`${file} holds a private key; give the public key or certificate`);
    let jwk: JWK;
    try {
      jwk = createPublicKey(text).export({ format: 'jwk' }) as JWK;
    } catch (err) {
      throw invalid(`${file} is not a PEM public key or certificate (${(err as Error).message})`);
    }
    return k.kid === undefined ? jwk : { ...jwk, kid: k.kid };
  }
  const jwk = (k as { jwk: Record<string, unknown> }).jwk as JWK;
  if (typeof jwk.kty !== 'string') throw invalid('a jwk key needs "kty"');
  if (jwk.kty === 'oct') throw invalid('a jwk key must be a public key; give an HMAC secret as { secret: ... }');
  if (jwk.d !== undefined) throw invalid('a jwk key must be a public key (it has "d")');
  return jwk;
}

/** Validates the keys against the algorithms and returns jose's `key` argument for jwtVerify. */
export function buildKeyResolver(s: KeySources): (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<unknown> {
  const secrets = new Map<string | undefined, Uint8Array>();
  const jwks: JWK[] = [];
  for (const k of s.keys) {
    if ('secret' in k) secrets.set(k.kid, new TextEncoder().encode(k.secret));
    else jwks.push(publicJwk(k, s.baseDir));
  }
  const wantsHmac = s.algorithms.some((a) => HMAC.has(a));
  const wantsPublic = s.algorithms.some((a) => !HMAC.has(a));
  if (wantsHmac && secrets.size === 0) throw invalid('HS256/HS384/HS512 need a shared secret in keys: [ { secret: ... } ]');
  if (secrets.size > 0 && !wantsHmac) throw invalid('a secret key is configured but algorithms allows no HS* algorithm');
  if (wantsPublic && jwks.length === 0 && s.jwks === undefined) throw invalid('no public key: set jwks or keys: [ { pem: FILE } | { jwk: {...} } ]');

  // A key configured without a kid verifies tokens whatever their kid (a PEM file has none); keys
  // with a kid are matched by it first.
  const withKid = jwks.filter((k) => k.kid !== undefined);
  const anyKid = jwks.filter((k) => k.kid === undefined);
  const byKid = withKid.length > 0 ? createLocalJWKSet({ keys: withKid } as JSONWebKeySet) : undefined;
  const kidless = anyKid.length > 0 ? createLocalJWKSet({ keys: anyKid } as JSONWebKeySet) : undefined;
  const local: PublicResolver | undefined =
    byKid === undefined && kidless === undefined
      ? undefined
      : async (header, token) => {
          if (byKid !== undefined) {
            try {
              return await byKid(header, token);
            } catch (err) {
              if (kidless === undefined || !(err instanceof errors.JWKSNoMatchingKey)) throw err;
            }
          }
          return kidless!(header.kid === undefined ? header : { ...header, kid: undefined });
        };
  const remote = s.jwks;
  const onlySecret = secrets.size === 1 ? [...secrets.values()][0] : undefined;

  return async (header, token) => {
    if (HMAC.has(header.alg ?? '')) {
      const secret = secrets.get(header.kid) ?? onlySecret;
      if (secret === undefined) throw new errors.JWKSNoMatchingKey();
      return secret;
    }
    if (local === undefined) return remote!.resolve(header, token);
    if (remote === undefined) return local(header, token);
    try {
      return await local(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) return remote.resolve(header, token);
      throw err;
    }
  };
}
