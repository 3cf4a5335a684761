// The config schema of jwt-auth. "none" is not in the algorithm list, so a config naming it fails
// validation at load; HMAC algorithms are accepted here and checked against the keys in create().
import { Type } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../../../config/duration.ts';

export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;

const Duration = (def: string, description: string) => Type.String({ pattern: DURATION_PATTERN, default: def, description });
const OneOrMany = (description: string) =>
  Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], { description });
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' });

const Key = Type.Union(
  [
    Type.Object({ pem: Type.String({ minLength: 1, description: 'a PEM file (SPKI public key or X.509 certificate), relative to the config file' }), kid: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
    Type.Object({ jwk: Type.Record(Type.String(), Type.Unknown(), { description: 'a public JWK' }) }, { additionalProperties: false }),
    Type.Object({ secret: Type.String({ minLength: 32, description: 'a shared HMAC secret (HS256/384/512 only), at least 32 bytes; use ${VAR}' }), kid: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
  ],
  { description: '{ pem: FILE } | { jwk: {...} } | { secret: "${VAR}" }' },
);

const TokenSource = Type.Union(
  [
    Type.Literal('header', { description: 'Authorization: Bearer <token>' }),
    Type.Object({ cookie: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    Type.Object({ query: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  ],
  { description: '"header", { cookie: NAME } or { query: NAME }' },
);

export const JwtAuthSchema = Type.Object(
  {
    jwks: Type.Optional(Type.String({ pattern: '^https?://', description: 'the JWKS URL (https, or http on a loopback host)' })),
    keys: Type.Optional(Type.Array(Key, { minItems: 1, description: 'local verification keys, instead of or besides jwks' })),
    issuer: OneOrMany('the accepted "iss" value(s)'),
    audience: OneOrMany('the accepted "aud" value(s)'),
    algorithms: Type.Array(Type.Union([...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS].map((a) => Type.Literal(a))), {
      minItems: 1,
      uniqueItems: true,
      default: ['RS256', 'ES256', 'EdDSA'],
      description: 'the accepted "alg" values ("none" is never accepted)',
    }),
    clockSkew: Duration('30s', 'tolerance for exp / nbf / iat'),
    requiredClaims: Type.Array(Type.String({ minLength: 1 }), { default: ['exp'], description: 'claims a token must carry' }),
    forwardClaims: Type.Record(Type.String({ minLength: 1 }), HeaderName, { default: {}, description: 'claim → upstream header' }),
    forwardAuthorization: Type.Boolean({ default: false, description: 'keep the Authorization header upstream' }),
    jwksCacheTtl: Duration('10m', 'how long fetched keys are fresh; stale keys keep serving while a refetch runs'),
    jwksCooldown: Duration('30s', 'the minimum time between two JWKS fetches'),
    jwksTimeout: Duration('5s', 'the timeout of one JWKS fetch'),
    jwksMaxBytes: Type.Integer({ minimum: 1024, default: 262_144, description: 'the largest JWKS document accepted' }),
    required: Type.Boolean({ default: true, description: 'false: requests without a token pass (claims unset); bad tokens are still refused' }),
    tokenSources: Type.Array(TokenSource, { minItems: 1, default: ['header'], description: 'where the token is looked for, in order' }),
    cacheSize: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 4096, description: 'verified tokens remembered, so a repeated token skips the signature check (0: off)' }),
    maxTokenBytes: Type.Integer({ minimum: 256, default: 8192, description: 'longer tokens are refused without any crypto work' }),
    realm: Type.String({ pattern: '^[\\x20-\\x21\\x23-\\x5b\\x5d-\\x7e]*$', default: 'meshgate', description: 'the realm in WWW-Authenticate' }),
  },
  { additionalProperties: false },
);
