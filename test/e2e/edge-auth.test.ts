// End to end: a real gateway process with jwt-auth (keys from a JWKS server in this test) and
// api-key routes, a real sidecar and app behind it, discovery through a test redis-server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { hashKey, generateKey } from '../../plugins/builtin/api-key/hash.ts';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { sign, signingKey, startJwksServer, type JwksServer, type SigningKey } from '../helpers/jwt.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const ISS = 'https://id.test';

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('edge auth: jwt-auth and api-key in a real gateway', () => {
  let redis: RedisServer | undefined;
  let jwks: JwksServer | undefined;
  let app: TestApp | undefined;
  let dir = '';
  const procs: MeshgateProcess[] = [];
  let gw = '';
  let gwAdmin = '';
  let idp: SigningKey;
  const apiKey = generateKey();

  before(async () => {
    idp = await signingKey('e2e-1');
    jwks = await startJwksServer([idp.publicJwk]);
    redis = await RedisServer.start();
    app = await startApp('app');
    dir = tempDir('meshgate-e2e-auth-');
    const store = { kind: 'redis', url: redis.url };
    const discovery = { resync: '500ms', stateDir: dir };
    const [inbound, outbound, scAdmin, httpPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const scFile = writeConfig(dir, 'app.yaml', {
      node: { service: 'app', instance: 'app-1', dc: 'local', zone: 'local-a' },
      app: { address: '127.0.0.1', port: app.port },
      inbound: { address: '127.0.0.1', port: inbound },
      outbound: { address: '127.0.0.1', port: outbound },
      admin: { address: '127.0.0.1', port: scAdmin },
      store,
      registration: { ttl: '10s', heartbeat: '1s' },
      discovery,
      log: { level: 'warn', access: false },
    });
    gw = `http://127.0.0.1:${httpPort}`;
    gwAdmin = `http://127.0.0.1:${adminPort}`;
    const gwFile = writeConfig(dir, 'gateway.yaml', {
      node: { name: 'edge-1', dc: 'local' },
      store,
      listeners: { http: { address: '127.0.0.1', port: httpPort } },
      admin: { address: '127.0.0.1', port: adminPort },
      discovery,
      log: { level: 'warn', access: false },
      services: { app: {} },
      routes: [
        {
          name: 'secure',
          match: { pathPrefix: '/secure' },
          service: 'app',
          plugins: [{ 'jwt-auth': { jwks: jwks.url, issuer: ISS, audience: 'api', forwardClaims: { sub: 'x-user-id', email: 'x-user-email' } } }],
        },
        {
          name: 'keyed',
          match: { pathPrefix: '/keyed' },
          service: 'app',
          plugins: [{ 'api-key': { header: 'x-api-key', keys: [{ consumer: 'acme', hash: hashKey(apiKey) }], forwardConsumerAs: 'x-consumer' } }],
        },
      ],
    });
    const sidecar = new MeshgateProcess(['proxy', '--config', scFile], cleanEnv('warn'));
    const gateway = new MeshgateProcess(['gateway', '--config', gwFile], cleanEnv('warn'));
    procs.push(sidecar, gateway);
    await Promise.all([sidecar.ready(`http://127.0.0.1:${scAdmin}`, 30_000), gateway.ready(gwAdmin, 30_000)]);
    await waitFor(
      'the gateway to see the app instance',
      async () => ((JSON.parse(await (await fetch(`${gwAdmin}/endpoints`)).text()) as { services: Record<string, unknown[]> }).services.app?.length === 1 ? true : undefined),
      30_000,
      100,
    );
  });

  after(async () => {
    await Promise.allSettled(procs.map((p) => p.stop('SIGTERM', 15_000)));
    await Promise.allSettled([app?.close(), jwks?.close()]);
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a valid JWT → 200; the upstream sees the claim headers, not the token or a spoofed claim', async () => {
    const token = await sign(idp, { sub: 'alice', email: 'alice@example.org' });
    app!.received.length = 0;
    const r = await get(`${gw}/secure/items`, { authorization: `Bearer ${token}`, 'x-user-id': 'mallory' });
    assert.equal(r.status, 200, r.text);
    const seen = app!.received.at(-1)!;
    assert.equal(seen.headers['x-user-id'], 'alice');
    assert.equal(seen.headers['x-user-email'], 'alice@example.org');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(jwks!.fetches, 1, 'the JWKS was fetched once');
  });

  test('a bad token → 401 JSON with WWW-Authenticate; no token → a bare challenge; the upstream is not called', async () => {
    app!.received.length = 0;
    const expired = await sign(idp, { sub: 'alice' }, { expiresIn: -3600 });
    const r = await get(`${gw}/secure/items`, { authorization: `Bearer ${expired}` });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="meshgate", error="invalid_token", error_description="token expired"');
    const body = JSON.parse(r.text) as { error: { code: string; message: string; requestId: string } };
    assert.equal(body.error.code, 'UNAUTHENTICATED');
    assert.equal(body.error.message, 'token expired');
    assert.ok(body.error.requestId);
    assert.ok(!r.text.includes(expired.split('.')[1]), 'the token is not echoed');

    const huge = await get(`${gw}/secure/items`, { authorization: `Bearer ${'x'.repeat(6000)}.${'y'.repeat(6000)}.z` });
    assert.equal(huge.status, 401);
    const none = await get(`${gw}/secure/items`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="meshgate"');
    assert.equal(app!.received.length, 0);

    const metrics = await (await fetch(`${gwAdmin}/metrics`)).text();
    assert.match(metrics, /meshgate_plugin_jwt_auth_failures_total\{route="secure",reason="expired"\} 1/);
    assert.match(metrics, /meshgate_plugin_jwt_auth_failures_total\{route="secure",reason="too_large"\} 1/);
  });

  test('api-key: a known key → 200 with the consumer forwarded and the key stripped; a wrong key → 401', async () => {
    app!.received.length = 0;
    const ok = await get(`${gw}/keyed/x`, { 'x-api-key': apiKey });
    assert.equal(ok.status, 200, ok.text);
    const seen = app!.received.at(-1)!;
    assert.equal(seen.headers['x-consumer'], 'acme');
    assert.equal(seen.headers['x-api-key'], undefined);

    const bad = await get(`${gw}/keyed/x`, { 'x-api-key': 'wrong' });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /^ApiKey /);
    assert.equal((JSON.parse(bad.text) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    assert.equal(app!.received.length, 1);
  });
});
