// Why a token was refused: a bounded set of reasons (the metric label) and a message that says why
// without echoing the token or any key. Replies and their WWW-Authenticate headers (RFC 6750 §3)
// are built once per plugin instance; a request only picks one.
import { errors } from 'jose';
import { deny, type LocalReply } from '../../api.ts';
import { JwksUnavailableError } from './jwks-cache.ts';

export const REASONS = [
  'missing',
  'too_large',
  'malformed',
  'alg_not_allowed',
  'unknown_key',
  'signature',
  'expired',
  'not_yet_valid',
  'issuer',
  'audience',
  'claims',
  'keys_unavailable',
] as const;
export type Reason = (typeof REASONS)[number];

const MESSAGES: Record<Reason, string> = {
  missing: 'a bearer token is required',
  too_large: 'token too large',
  malformed: 'malformed token',
  alg_not_allowed: 'token algorithm not allowed',
  unknown_key: 'no key matches the token',
  signature: 'signature verification failed',
  expired: 'token expired',
  not_yet_valid: 'token not yet valid',
  issuer: 'issuer mismatch',
  audience: 'audience mismatch',
  claims: 'token claims invalid',
  keys_unavailable: 'signing keys unavailable, try again later',
};

/** Maps a jwtVerify error to a reason; undefined for a bug (not a token problem). */
export function classify(err: unknown): Reason | undefined {
  if (err instanceof JwksUnavailableError) return 'keys_unavailable';
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'not_yet_valid';
    if (err.claim === 'iss') return 'issuer';
    if (err.claim === 'aud') return 'audience';
    return 'claims';
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'alg_not_allowed';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'unknown_key';
  if (err instanceof errors.JOSENotSupported) return 'alg_not_allowed';
  if (err instanceof errors.JOSEError) return 'malformed'; // JWSInvalid, JWTInvalid, JWKInvalid …
  return undefined;
}

export function buildReplies(realm: string): Record<Reason, LocalReply> {
  const out = {} as Record<Reason, LocalReply>;
  for (const r of REASONS) {
    if (r === 'missing') {
      // No credentials: a challenge without an error code (RFC 6750 §3.1).
      out[r] = deny(401, 'UNAUTHENTICATED', MESSAGES[r], { 'www-authenticate': `Bearer realm="${realm}"` });
    } else if (r === 'keys_unavailable') {
      // The IdP is unreachable and no keys were ever fetched: not the client's fault, so no 401.
      out[r] = deny(503, 'AUTH_UNAVAILABLE', MESSAGES[r], { 'retry-after': '5' });
    } else {
      out[r] = deny(401, 'UNAUTHENTICATED', MESSAGES[r], {
        'www-authenticate': `Bearer realm="${realm}", error="invalid_token", error_description="${MESSAGES[r]}"`,
      });
    }
  }
  return out;
}
