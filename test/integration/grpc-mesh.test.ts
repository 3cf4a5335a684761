// gRPC with real peers (@grpc/grpc-js client and server): through the edge gateway and a sidecar
// hop (h2 over mTLS to the sidecar, h2c to the app), and east-west from an app's sidecar outbound.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { hashKey } from '../../plugins/builtin/api-key/hash.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { tempDir } from '../helpers/cli.ts';
import { echoClient, grpc, startEchoServer, unary, type EchoClient, type EchoReply, type EchoServer } from '../helpers/grpc.ts';
import { createTestCa } from '../helpers/mtls.ts';
import { waitFor } from '../helpers/ports.ts';
import { stopAll } from '../helpers/mesh.ts';

const quiet = { level: 'silent', access: false } as const;
const ECHO = '/meshgate.test.Echo';

describe('gRPC through the gateway and a sidecar hop', () => {
  let store: MemoryStore;
  let echo: EchoServer;
  let echoSidecar: Sidecar;
  let callerSidecar: Sidecar;
  let gw: Gateway;
  let client: EchoClient;
  let admin: string;
  let caDir: string;

  before(async () => {
    const ca = await createTestCa();
    caDir = ca.dir;
    const mesh = { caDir: ca.dir };
    store = new MemoryStore();
    echo = await startEchoServer();
    const sidecar = (service: string, id: string, app: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      startSidecar(
        buildProxyConfig(
          {
            node: { service, instance: id, zone: 'z1' },
            app,
            inbound: { address: '127.0.0.1', port: 0 },
            outbound: { address: '127.0.0.1', port: 0 },
            admin: { port: 0 },
            discovery: { resync: '500ms', stateDir: tempDir() },
            mesh,
            log: quiet,
            ...extra,
          },
          `test:${id}`,
        ),
        { store },
      );
    echoSidecar = await sidecar('echo', 'echo-1', { port: echo.port, protocol: 'h2c' }, {
      inbound: { address: '127.0.0.1', port: 0, authorize: { default: 'deny', allow: [{ from: ['edge', 'caller'] }] } },
    });
    // An app that calls echo east-west through its own sidecar (its app port is never called here).
    callerSidecar = await sidecar('caller', 'caller-1', { port: 1 });
    gw = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          mesh: { ...mesh, service: 'edge' },
          log: quiet,
          services: { echo: { retries: { attempts: 0 } }, nowhere: {} },
          routes: [
            { name: 'keyed', match: { pathPrefix: ECHO, headers: { 'x-route': 'keyed' } }, service: 'echo', grpc: true, plugins: [{ 'api-key': { keys: [{ consumer: 'acme', hash: hashKey('k-123') }] } }] },
            { name: 'limited', match: { pathPrefix: ECHO, headers: { 'x-route': 'limited' } }, service: 'echo', grpc: true, plugins: [{ 'rate-limit': { key: 'route', limits: [{ max: 1, per: '1h' }] } }] },
            { name: 'nowhere', match: { pathPrefix: '/meshgate.test.Nowhere' }, service: 'nowhere', grpc: true },
            { name: 'echo', match: { pathPrefix: ECHO }, service: 'echo', grpc: true },
          ],
        },
        'test:edge',
      ),
      { store },
    );
    admin = `http://127.0.0.1:${gw.admin.port}`;
    client = echoClient(`127.0.0.1:${gw.http.port}`);
    await waitFor('the gateway sees echo', async () => ((await unary(client, { message: 'warm-up' })).reply ? true : undefined), 15_000, 100);
  });

  after(async () => {
    client?.close();
    await stopAll(gw, echoSidecar, callerSidecar);
    await echo?.close();
    await store?.close();
  });

  test('unary: reply, initial metadata and trailers cross both hops', async () => {
    const r = await unary(client, { message: 'hello' }, { metadata: { 'x-custom': 'v1' } });
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.reply?.message, 'hello');
    assert.deepEqual(r.headers?.['x-echo-initial'], '1');
    assert.deepEqual(r.trailers?.['x-echo-trailer'], 'done');
    assert.equal(echo.lastMetadata['x-custom'], 'v1');
  });

  test('server streaming arrives message by message, not buffered until the end', async () => {
    const arrivals: number[] = [];
    const got: number[] = [];
    const start = Date.now();
    await new Promise<void>((resolve, reject) => {
      const call = client.ServerStream({ message: 's', count: 3, delay_ms: 250 });
      call.on('data', (r: EchoReply) => {
        got.push(r.index);
        arrivals.push(Date.now() - start);
      });
      call.on('end', resolve);
      call.on('error', reject);
    });
    assert.deepEqual(got, [0, 1, 2]);
    // 250 ms between messages at the server: relayed as they come, the first well before the last.
    assert.ok(arrivals[2] - arrivals[0] >= 300, `arrivals ${arrivals.join(', ')} ms`);
  });

  test('client streaming: every message reaches the server', async () => {
    const reply = await new Promise<EchoReply>((resolve, reject) => {
      const call = client.ClientStream((err: grpc.ServiceError | null, r: EchoReply) => (err ? reject(err) : resolve(r)));
      for (let i = 0; i < 10; i++) call.write({ message: `m${i}` });
      call.end();
    });
    assert.equal(reply.index, 10);
    assert.equal(reply.message, 'm0,m1,m2,m3,m4,m5,m6,m7,m8,m9');
  });

  test('bidirectional: each reply comes back before the next message is sent', async () => {
    const replies = await new Promise<string[]>((resolve, reject) => {
      const call = client.Bidi();
      const out: string[] = [];
      call.on('data', (r: EchoReply) => {
        out.push(r.message);
        if (out.length < 5) call.write({ message: `ping-${out.length}` });
        else call.end();
      });
      call.on('end', () => resolve(out));
      call.on('error', reject);
      call.write({ message: 'ping-0' });
    });
    assert.deepEqual(replies, ['ping-0', 'ping-1', 'ping-2', 'ping-3', 'ping-4']);
  });

  test('a 4 MB message each way', async () => {
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i % 251;
    const r = await unary(client, { message: 'big', payload });
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.reply?.payload.length, payload.length);
    assert.ok(r.reply?.payload.equals(payload));
  });

  test('an error status with metadata (text and -bin) reaches the client intact', async () => {
    const r = await unary(client, { fail_code: grpc.status.NOT_FOUND, fail_message: 'no such item: ä' });
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
    assert.equal(r.error?.details, 'no such item: ä');
    assert.deepEqual(r.error?.metadata.get('x-fail-detail'), ['yes']);
    assert.deepEqual(r.error?.metadata.get('x-fail-bin'), [Buffer.from([0, 1, 2, 255])]);
  });

  test("grpc-timeout is the deadline: DEADLINE_EXCEEDED, and the server saw what was left of it", async () => {
    const r = await unary(client, { delay_ms: 5000 }, { deadlineMs: 400 });
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(echo.lastDeadlineMs <= 400 && echo.lastDeadlineMs > 0, `the server's deadline: ${echo.lastDeadlineMs} ms`);
  });

  test('a cancelled call is cancelled at the server too', async () => {
    const before = echo.cancelled;
    await new Promise<void>((resolve) => {
      const call = client.Unary({ delay_ms: 5000 }, (err: grpc.ServiceError | null) => {
        assert.equal(err?.code, grpc.status.CANCELLED);
        resolve();
      });
      setTimeout(() => call.cancel(), 200);
    });
    await waitFor('the server sees the cancellation', () => (echo.cancelled > before ? true : undefined), 5000, 20);
  });

  test('mesh failures are gRPC statuses: UNAVAILABLE, RESOURCE_EXHAUSTED, UNAUTHENTICATED', async () => {
    const nowhere = new (grpc.makeGenericClientConstructor({}, 'Nowhere'))(`127.0.0.1:${gw.http.port}`, grpc.credentials.createInsecure());
    const unavailable = await new Promise<grpc.ServiceError>((resolve) =>
      nowhere.makeUnaryRequest('/meshgate.test.Nowhere/Call', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err: grpc.ServiceError | null) => resolve(err!)),
    );
    nowhere.close();
    assert.equal(unavailable.code, grpc.status.UNAVAILABLE);
    assert.match(unavailable.details, /no available endpoints/);
    assert.deepEqual(unavailable.metadata.get('x-meshgate-error'), ['NO_ENDPOINTS']);

    const first = await unary(client, { message: 'one' }, { metadata: { 'x-route': 'limited' } });
    assert.equal(first.error, undefined);
    const limited = await unary(client, { message: 'two' }, { metadata: { 'x-route': 'limited' } });
    assert.equal(limited.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(limited.error?.metadata.get('x-meshgate-error'), ['RATE_LIMITED']);

    const anonymous = await unary(client, { message: 'x' }, { metadata: { 'x-route': 'keyed' } });
    assert.equal(anonymous.error?.code, grpc.status.UNAUTHENTICATED);
    const keyed = await unary(client, { message: 'x' }, { metadata: { 'x-route': 'keyed', 'x-api-key': 'k-123' } });
    assert.equal(keyed.error, undefined, keyed.error?.message);
  });

  test('east-west: an app calls echo through its sidecar outbound (h2c), and inbound authorization answers PERMISSION_DENIED', async () => {
    const viaSidecar = echoClient(`127.0.0.1:${callerSidecar.outbound.port}`, undefined, 'echo');
    try {
      const r = await unary(viaSidecar, { message: 'east-west' });
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.reply?.message, 'east-west');
    } finally {
      viaSidecar.close();
    }
    // The echo sidecar allows edge and caller only: call its inbound as another service would.
    const stranger = await startSidecar(
      buildProxyConfig({ node: { service: 'stranger', instance: 'stranger-1' }, app: { port: 1 }, inbound: { address: '127.0.0.1', port: 0 }, outbound: { address: '127.0.0.1', port: 0 }, admin: { port: 0 }, discovery: { stateDir: tempDir() }, mesh: { caDir }, log: quiet }, 'test:stranger'),
      { store },
    );
    const c = echoClient(`127.0.0.1:${stranger.outbound.port}`, undefined, 'echo');
    try {
      const denied = await unary(c, { message: 'x' });
      assert.equal(denied.error?.code, grpc.status.PERMISSION_DENIED);
    } finally {
      c.close();
      await stranger.stop();
    }
  });

  test('gRPC health checking: an endpoint answering NOT_SERVING is taken out, and brought back when SERVING', async () => {
    // A gateway of its own that checks the sidecar with grpc.health.v1 (through the mTLS hop).
    const checked = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge-hc', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          mesh: { caDir, service: 'edge' },
          log: quiet,
          services: { echo: { retries: { attempts: 0 }, healthCheck: { interval: '100ms', timeout: '1s', unhealthyThreshold: 2, healthyThreshold: 1, grpc: { service: 'meshgate.test.Echo' } }, outlier: { maxEjectedPercent: 100 } } },
          routes: [{ name: 'echo', match: { pathPrefix: ECHO }, service: 'echo', grpc: true }],
        },
        'test:edge-hc',
      ),
      { store },
    );
    const c = echoClient(`127.0.0.1:${checked.http.port}`);
    try {
      await waitFor('served while SERVING', async () => ((await unary(c, { message: 'ok' })).reply ? true : undefined), 10_000, 50);
      const before = echo.healthChecks;
      echo.health = 'NOT_SERVING';
      const down = await waitFor('taken out', async () => {
        const r = await unary(c, { message: 'x' });
        return r.error?.code === grpc.status.UNAVAILABLE ? r : undefined;
      }, 10_000, 50);
      assert.deepEqual(down.error?.metadata.get('x-meshgate-error'), ['NO_ENDPOINTS']);
      assert.ok(echo.healthChecks > before, 'the checks reached the app through the sidecar');
      echo.health = 'SERVING';
      await waitFor('brought back', async () => ((await unary(c, { message: 'back' })).reply ? true : undefined), 10_000, 50);
    } finally {
      echo.health = 'SERVING';
      c.close();
      await stopAll(checked);
    }
  });

  test('gRPC over TLS: a grpc-js client with TLS credentials to the HTTPS listener (h2 by ALPN)', async () => {
    const cert = await selfSignedCertificate(['localhost', '127.0.0.1']);
    const dir = tempDir();
    writeFileSync(join(dir, 'c.pem'), cert.cert);
    writeFileSync(join(dir, 'k.pem'), cert.key);
    const tlsGw = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge-tls', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 }, https: { address: '127.0.0.1', port: 0, certificates: [{ cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') }] } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          mesh: { caDir, service: 'edge' },
          log: quiet,
          services: { echo: {} },
          routes: [{ name: 'echo', match: { pathPrefix: ECHO }, service: 'echo', grpc: true }],
        },
        'test:edge-tls',
      ),
      { store },
    );
    const c = echoClient(`127.0.0.1:${tlsGw.https!.port}`, { ca: Buffer.from(cert.cert), servername: 'localhost' });
    try {
      const r = await waitFor('a unary call over TLS', async () => {
        const x = await unary(c, { message: 'over tls', payload: Buffer.alloc(100_000, 1) });
        return x.reply ? x : undefined;
      }, 10_000, 100);
      assert.equal(r.reply?.message, 'over tls');
      assert.equal(r.reply?.payload.length, 100_000);
      const streamed = await new Promise<number[]>((resolve, reject) => {
        const got: number[] = [];
        const call = c.ServerStream({ count: 3 });
        call.on('data', (x: EchoReply) => got.push(x.index));
        call.on('end', () => resolve(got));
        call.on('error', reject);
      });
      assert.deepEqual(streamed, [0, 1, 2]);
    } finally {
      c.close();
      await stopAll(tlsGw);
    }
  });

  test('a request that is not gRPC gets a clear 415 NOT_GRPC and the gateway keeps serving', async () => {
    const res = await request(`http://127.0.0.1:${gw.http.port}${ECHO}/Unary`, { method: 'GET' });
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    assert.equal(res.statusCode, 415);
    assert.equal(body.error.code, 'NOT_GRPC');
    assert.match(body.error.message, /application\/grpc/);
    const r = await unary(client, { message: 'still here' });
    assert.equal(r.reply?.message, 'still here');
  });

  test('calls are counted by gRPC service, method and status', async () => {
    const text = await (await request(`${admin}/metrics`)).body.text();
    const line = (method: string, code: string) => text.split('\n').find((l) => l.startsWith('meshgate_grpc_requests_total{') && l.includes(`grpc_method="${method}"`) && l.includes(`grpc_code="${code}"`) && l.includes('direction="edge"'));
    assert.ok(line('Unary', 'OK'), 'Unary OK counted');
    assert.ok(line('Unary', 'NOT_FOUND'), 'Unary NOT_FOUND counted');
    assert.ok(line('ServerStream', 'OK'), 'ServerStream OK counted');
    assert.ok(line('Bidi', 'OK'), 'Bidi OK counted');
    // The caller gives up at the same deadline as the proxy: whichever acts first names the outcome.
    assert.ok(line('Unary', 'DEADLINE_EXCEEDED') || line('Unary', 'CANCELLED'), 'the expired call counted');
    assert.ok(line('Unary', 'CANCELLED'), 'the cancelled call counted');
  });
});
