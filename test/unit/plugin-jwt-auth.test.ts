// jwt-auth against fake requests (plugins/testing.ts): the verification matrix, the JWKS cache
// against a real key server on 127.0.0.1, and what reaches the upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import jwtAuth from '../../plugins/builtin/jwt-auth/index.ts';
import { pluginHarness, runPlugin, type FakeRequest } from '../../plugins/testing.ts';
import { tempDir } from '../helpers/cli.ts';
import { b64url, sign, signingKey, startJwksServer, type JwksServer, type SigningKey } from '../helpers/jwt.ts';

const ISS = 'https://id.test';
let dir: string;
let rsa: SigningKey;
let ec: SigningKey;
let other: SigningKey;
let pemFile: string;

function bearer(token: string, headers: Record<string, string> = {}): FakeRequest {
  return { headers: { authorization: `Bearer ${token}`, ...headers } };
}

function local(extra: Record<string, unknown> = {}) {
  return { keys: [{ pem: pemFile }, { jwk: ec.publicJwk }], issuer: ISS, audience: 'api', ...extra };
}

function assertRefused(run: { reply?: { status: number; code?: string; message?: string; headers?: Readonly<Record<string, string>> } }, message: string) {
  assert.equal(run.reply?.status, 401, `expected 401, got ${JSON.stringify(run.reply)}`);
  assert.equal(run.reply?.code, 'UNAUTHENTICATED');
  assert.equal(run.reply?.message, message);
  assert.match(run.reply?.headers?.['www-authenticate'] ?? '', new RegExp(`^Bearer realm="meshgate", error="invalid_token", error_description="${message}"$`));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dir = tempDir('meshgate-jwt-');
  [rsa, ec, other] = await Promise.all([signingKey('rsa-1', 'RS256'), signingKey('ec-1', 'ES256'), signingKey('rsa-2', 'RS256')]);
  pemFile = join(dir, 'idp.pub.pem');
  writeFileSync(pemFile, rsa.publicPem);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('jwt-auth: verification', () => {
  test('a valid token passes: claims and consumer set, claims forwarded, spoofed claim headers and Authorization removed', async () => {
    const token = await sign(rsa, { sub: 'alice', email: 'alice@example.org', roles: ['a', 'b'] });
    const run = await runPlugin(jwtAuth, local({ forwardClaims: { sub: 'x-user-id', email: 'X-User-Email', roles: 'x-roles' } }), bearer(token, { 'x-user-id': 'mallory', 'x-other': 'kept' }));
    assert.equal(run.reply, undefined);
    assert.equal(run.forwarded, true);
    assert.equal(run.context.claims?.sub, 'alice');
    assert.equal(run.context.consumer, 'alice');
    assert.equal(run.upstream.headers['x-user-id'], 'alice');
    assert.equal(run.upstream.headers['x-user-email'], 'alice@example.org');
    assert.equal(run.upstream.headers['x-roles'], '["a","b"]');
    assert.equal(run.upstream.headers['x-other'], 'kept');
    assert.equal(run.upstream.headers.authorization, undefined);
  });

  test('an ES256 token verifies with a configured JWK; forwardAuthorization keeps the header', async () => {
    const token = await sign(ec, { sub: 'bob' });
    const run = await runPlugin(jwtAuth, local({ forwardAuthorization: true }), bearer(token));
    assert.equal(run.forwarded, true);
    assert.equal(run.upstream.headers.authorization, `Bearer ${token}`);
  });

  test('a spoofed claim header is removed even when the token lacks the claim', async () => {
    const token = await sign(rsa, { sub: 'alice' });
    const run = await runPlugin(jwtAuth, local({ forwardClaims: { email: 'x-user-email' } }), bearer(token, { 'x-user-email': 'root@example.org' }));
    assert.equal(run.forwarded, true);
    assert.equal(run.upstream.headers['x-user-email'], undefined);
  });

  test('expired → 401 "token expired"', async () => {
    assertRefused(await runPlugin(jwtAuth, local(), bearer(await sign(rsa, { sub: 'a' }, { expiresIn: -120 }))), 'token expired');
  });

  test('nbf in the future → 401 "token not yet valid"', async () => {
    assertRefused(await runPlugin(jwtAuth, local(), bearer(await sign(rsa, { sub: 'a' }, { notBefore: 600 }))), 'token not yet valid');
  });

  test('wrong issuer → 401 "issuer mismatch"; wrong audience → 401 "audience mismatch"', async () => {
    assertRefused(await runPlugin(jwtAuth, local(), bearer(await sign(rsa, {}, { issuer: 'https://evil.test' }))), 'issuer mismatch');
    assertRefused(await runPlugin(jwtAuth, local(), bearer(await sign(rsa, {}, { audience: 'other' }))), 'audience mismatch');
  });

  test('issuer and audience lists accept any of their values', async () => {
    const run = await runPlugin(jwtAuth, local({ issuer: ['https://x.test', ISS], audience: ['web', 'api'] }), bearer(await sign(rsa, {}, { audience: 'web' })));
    assert.equal(run.forwarded, true);
  });

  test('a token signed by an unknown key fails signature verification', async () => {
    // Same kid as the configured key, different private key.
    assertRefused(await runPlugin(jwtAuth, local(), bearer(await sign({ ...other, kid: 'rsa-1' }))), 'signature verification failed');
  });

  test('a tampered payload fails signature verification', async () => {
    const [h, , s] = (await sign(rsa, { sub: 'alice' })).split('.');
    const forged = `${h}.${b64url({ sub: 'admin', iss: ISS, aud: 'api', exp: Math.floor(Date.now() / 1000) + 60 })}.${s}`;
    assertRefused(await runPlugin(jwtAuth, local(), bearer(forged)), 'signature verification failed');
  });

  test('alg "none" is refused (unsigned token and with a fake signature)', async () => {
    const claims = { sub: 'admin', iss: ISS, aud: 'api', exp: Math.floor(Date.now() / 1000) + 60 };
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
    assertRefused(await runPlugin(jwtAuth, local(), bearer(unsigned)), 'malformed token');
    const fakeSig = `${b64url({ alg: 'none' })}.${b64url(claims)}.${b64url('x')}`;
    assertRefused(await runPlugin(jwtAuth, local(), bearer(fakeSig)), 'token algorithm not allowed');
  });

  test('alg "none" in the config is rejected at load', async () => {
    await assert.rejects(runPlugin(jwtAuth, local({ algorithms: ['RS256', 'none'] })), (err: Error & { issues?: Array<{ path: string }> }) => {
      assert.match(err.message, /algorithms/);
      return true;
    });
  });

  test('HS256 signed with the RSA public key as the secret is refused (alg confusion)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const confused = await new SignJWT({ sub: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(ISS)
      .setAudience('api')
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(rsa.publicPem));
    // 1. Default algorithms: HS256 is not allowed at all.
    assertRefused(await runPlugin(jwtAuth, local(), bearer(confused)), 'token algorithm not allowed');
    // 2. HS256 allowed with its own secret: the public key still never serves as the HMAC secret.
    const secret = 'a-shared-secret-of-at-least-32-bytes!!';
    const run = await runPlugin(jwtAuth, local({ algorithms: ['RS256', 'HS256'], keys: [{ pem: pemFile }, { secret }] }), bearer(confused));
    assertRefused(run, 'signature verification failed');
    // 3. …while a token really signed with the secret passes.
    const good = await new SignJWT({ sub: 'svc' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISS).setAudience('api').setExpirationTime(now + 60).sign(new TextEncoder().encode(secret));
    assert.equal((await runPlugin(jwtAuth, local({ algorithms: ['RS256', 'HS256'], keys: [{ pem: pemFile }, { secret }] }), bearer(good))).forwarded, true);
  });

  test('HS* without a secret, a private key PEM, or no key source are config errors', async () => {
    await assert.rejects(runPlugin(jwtAuth, local({ algorithms: ['HS256'] })), /need a shared secret/);
    const priv = join(dir, 'private.pem');
    writeFileSync(priv, '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n');
    await assert.rejects(runPlugin(jwtAuth, local({ keys: [{ pem: priv }] })), /private key/);
    await assert.rejects(runPlugin(jwtAuth, { issuer: ISS, audience: 'api' }), /set jwks .* or keys/);
    await assert.rejects(runPlugin(jwtAuth, { jwks: 'http://id.example.org/jwks', issuer: ISS, audience: 'api' }), /https/);
  });

  test('clock skew: expired 10 s ago passes with the default 30 s, fails with 0 s', async () => {
    const token = await sign(rsa, { sub: 'a' }, { expiresIn: -10 });
    assert.equal((await runPlugin(jwtAuth, local(), bearer(token))).forwarded, true);
    assertRefused(await runPlugin(jwtAuth, local({ clockSkew: '0s' }), bearer(token)), 'token expired');
    const early = await sign(rsa, { sub: 'a' }, { notBefore: 10 });
    assert.equal((await runPlugin(jwtAuth, local(), bearer(early))).forwarded, true);
  });

  test('a token without exp is refused by default (requiredClaims)', async () => {
    const t = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(ISS).setAudience('api').sign(rsa.privateKey);
    assertRefused(await runPlugin(jwtAuth, local(), bearer(t)), 'token claims invalid');
  });
});

describe('jwt-auth: missing, oversized and garbage tokens', () => {
  test('no token → 401 with a challenge and no error code (RFC 6750 §3.1)', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer ' }] as Record<string, string>[]) {
      const run = await runPlugin(jwtAuth, local({ realm: 'api.test' }), { headers });
      assert.equal(run.reply?.status, 401);
      assert.equal(run.reply?.code, 'UNAUTHENTICATED');
      assert.equal(run.reply?.headers?.['www-authenticate'], 'Bearer realm="api.test"');
    }
  });

  test('required: false lets requests without a token through (claims unset) but still refuses bad tokens', async () => {
    const h = await pluginHarness(jwtAuth, local({ required: false, forwardClaims: { sub: 'x-user-id' } }));
    try {
      const anon = await h.run({ headers: { 'x-user-id': 'spoofed' } });
      assert.equal(anon.forwarded, true);
      assert.equal(anon.context.claims, undefined);
      assert.equal(anon.upstream.headers['x-user-id'], undefined);
      assertRefused(await h.run(bearer(await sign(rsa, {}, { expiresIn: -600 }))), 'token expired');
    } finally {
      await h.close();
    }
  });

  test('a 64 KB token and garbage are refused fast with 401, and the plugin keeps serving', async () => {
    const h = await pluginHarness(jwtAuth, local());
    try {
      const huge = `${'a'.repeat(32 * 1024)}.${'b'.repeat(32 * 1024)}.c`;
      const started = performance.now();
      for (let i = 0; i < 200; i++) assertRefused(await h.run(bearer(huge)), 'token too large');
      const perRequest = (performance.now() - started) / 200;
      assert.ok(perRequest < 5, `a 64 KB token should cost no crypto work (${perRequest.toFixed(3)} ms per request)`);
      for (const garbage of ['!!!', 'a.b', 'a..c', '....', '\u00ff\u00fe.x.y', 'eyJhbGciOiJSUzI1NiJ9.%%%.abc', 'abc.def.ghi', `${b64url('[1,2]')}.${b64url('{}')}.${b64url('x')}`]) {
        assertRefused(await h.run(bearer(garbage)), 'malformed token');
      }
      assert.equal((await h.run(bearer(await sign(rsa, { sub: 'after' })))).forwarded, true);
    } finally {
      await h.close();
    }
  });

  test('tokens from a cookie or a query parameter', async () => {
    const token = await sign(rsa, { sub: 'c' });
    const config = local({ tokenSources: ['header', { cookie: 'session' }, { query: 'access_token' }] });
    assert.equal((await runPlugin(jwtAuth, config, { headers: { cookie: `theme=dark; session=${token}` } })).context.consumer, 'c');
    assert.equal((await runPlugin(jwtAuth, config, { path: `/x?a=1&access_token=${token}` })).context.consumer, 'c');
    assert.equal((await runPlugin(jwtAuth, config, { headers: { cookie: 'sessionx=1' } })).reply?.status, 401);
  });
});

describe('jwt-auth: JWKS', () => {
  let jwks: JwksServer;
  before(async () => {
    jwks = await startJwksServer([rsa.publicJwk]);
  });
  after(() => jwks.close());

  const remote = (extra: Record<string, unknown> = {}) => ({ jwks: jwks.url, issuer: ISS, audience: 'api', jwksCooldown: '300ms', ...extra });

  test('keys are fetched once and cached; an unknown kid refetches, at most once per cooldown', async () => {
    jwks.fetches = 0;
    jwks.keys = [rsa.publicJwk];
    const h = await pluginHarness(jwtAuth, remote());
    try {
      const t1 = await sign(rsa, { sub: 'one' });
      for (let i = 0; i < 20; i++) assert.equal((await h.run(bearer(t1))).forwarded, true);
      assert.equal(jwks.fetches, 1, 'one fetch for twenty requests');
      // 1. The IdP rotates in a new key; right after a fetch the cooldown holds: no refetch.
      jwks.keys = [rsa.publicJwk, other.publicJwk];
      const t2 = await sign(other, { sub: 'two' });
      assertRefused(await h.run(bearer(t2)), 'no key matches the token');
      assert.equal(jwks.fetches, 1);
      // 2. After the cooldown the unknown kid triggers one refetch and verifies.
      await sleep(400);
      assert.equal((await h.run(bearer(t2))).context.consumer, 'two');
      assert.equal(jwks.fetches, 2);
      // 3. A burst of forged kids costs at most one more fetch per cooldown.
      await sleep(400);
      const forged = await Promise.all(Array.from({ length: 30 }, (_, i) => sign({ ...other, kid: `forged-${i}` }, {})));
      for (const f of forged) assertRefused(await h.run(bearer(f)), 'no key matches the token');
      assert.equal(jwks.fetches, 3);
    } finally {
      await h.close();
    }
  });

  test('the JWKS server going down after a first fetch: cached keys keep working, even past their TTL', async () => {
    jwks.fetches = 0;
    jwks.keys = [rsa.publicJwk];
    const h = await pluginHarness(jwtAuth, remote({ jwksCacheTtl: '100ms', jwksCooldown: '100ms', jwksTimeout: '1s' }));
    try {
      const token = await sign(rsa, { sub: 'cached' });
      assert.equal((await h.run(bearer(token))).forwarded, true);
      assert.equal(jwks.fetches, 1);
      jwks.down = true;
      for (let i = 0; i < 5; i++) {
        await sleep(150); // past TTL and cooldown: each round starts a background refetch that fails
        const started = performance.now();
        const run = await h.run(bearer(token));
        assert.equal(run.forwarded, true, `round ${i}: ${JSON.stringify(run.reply)}`);
        assert.ok(performance.now() - started < 500, 'a stale key set never makes a request wait for the IdP');
      }
      jwks.down = false;
      await sleep(150);
      await h.run(bearer(token));
      await sleep(100);
      assert.ok(jwks.fetches >= 2, 'refetched once the IdP is back');
    } finally {
      jwks.down = false;
      await h.close();
    }
  });

  test('an IdP unreachable from the start → 503 AUTH_UNAVAILABLE, fast during the cooldown', async () => {
    jwks.down = true;
    const h = await pluginHarness(jwtAuth, remote({ jwksCooldown: '10s', jwksTimeout: '1s' }));
    try {
      const token = await sign(rsa, { sub: 'x' });
      const first = await h.run(bearer(token));
      assert.equal(first.reply?.status, 503);
      assert.equal(first.reply?.code, 'AUTH_UNAVAILABLE');
      const started = performance.now();
      assert.equal((await h.run(bearer(token))).reply?.status, 503);
      assert.ok(performance.now() - started < 100, 'no refetch during the cooldown');
    } finally {
      jwks.down = false;
      await h.close();
    }
  });

  test('a JWKS document over the size cap is refused (keys unavailable)', async () => {
    jwks.keys = [rsa.publicJwk, ...Array.from({ length: 40 }, (_, i) => ({ ...other.publicJwk, kid: `pad-${i}` }))];
    const h = await pluginHarness(jwtAuth, remote({ jwksMaxBytes: 4096 }));
    try {
      assert.equal((await h.run(bearer(await sign(rsa, {})))).reply?.status, 503);
    } finally {
      jwks.keys = [rsa.publicJwk];
      await h.close();
    }
  });
});
