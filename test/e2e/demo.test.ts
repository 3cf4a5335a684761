// `meshgate demo` as a user runs it: the gateway and three sidecars in one process on the in-memory
// store, the demo services (examples/demo-services) as child processes; SIGINT stops everything.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { connect, createServer } from 'node:net';
import { resolve } from 'node:path';
import { MeshgateProcess, tempDir } from '../helpers/cli.ts';
import { grpc } from '../helpers/grpc.ts';
import * as loader from '@grpc/proto-loader';
import { decodeGrpcWebResponse } from '../../gateway/grpc-web/response-encoder.ts';
import { waitFor } from '../helpers/ports.ts';

/** Every port the demo binds, before the offset (bin/commands/demo.ts). */
const DEMO_PORTS = [8080, 8443, 9901, 3001, 3002, 3003, 3004, 4140, 4143, 4191, 4240, 4243, 4291, 4340, 4343, 4391, 4440, 4443, 4491];
const APP_PORTS = [3001, 3002, 3003, 3004];

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request on a fresh connection (agent: false), so no socket outlives the test. */
function get(url: string, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Whether something accepts connections on `port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(2000, () => {
      s.destroy();
      resolve(false);
    });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** The cmdline of a live (non-zombie) process, or undefined (Linux /proc). */
function cmdline(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

function isDemoService(pid: number): boolean {
  return cmdline(pid)?.includes('demo-services') ?? false;
}

/** The demo's child processes running an examples/demo-services script. */
function demoServicePids(parent: number): number[] {
  const pids: number[] = [];
  if (!existsSync('/proc/self/stat')) return pids;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && isDemoService(Number(name))) pids.push(Number(name));
    } catch {
      // the process went away meanwhile
    }
  }
  return pids;
}

/**
 * A random offset whose demo ports are all free. Offsets stay in 7000..9900 so every demo port lies
 * in 10000..19999: below freePort()'s range (20000..31999), where the other test files running
 * alongside bind their servers, and below Linux's ephemeral range (32768+). Bounded attempts.
 */
async function pickOffset(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 7_000 + Math.floor(Math.random() * 2_900);
    const free = await Promise.all(DEMO_PORTS.map((p) => canBind(p + offset)));
    if (free.every(Boolean)) return offset;
  }
  throw new Error('no free port offset for the demo after 50 attempts');
}

describe('meshgate demo', () => {
  let demo: MeshgateProcess | undefined;
  let dir = '';
  let offset = 0;
  let base = '';

  before(async () => {
    dir = tempDir('meshgate-e2e-demo-');
    // The probe and the demo's own bind can race with another process: retry with a new offset
    // when the demo cannot listen (bounded).
    for (let attempt = 1; ; attempt++) {
      offset = await pickOffset();
      base = `http://127.0.0.1:${8080 + offset}`;
      const d = new MeshgateProcess(['demo', '--port-offset', String(offset), '--state-dir', dir], {
        MESHGATE_LOG_LEVEL: 'warn',
        MESHGATE_REDIS_URL: '',
        MESHGATE_STATE_DIR: '',
      });
      demo = d;
      try {
        const outcome = await waitFor(
          'the demo to answer GET /catalog/items',
          async () => {
            if (d.exited) return 'exited'; // stop polling at once
            const r = await get(`${base}/catalog/items`).catch(() => undefined);
            return r?.status === 200 ? 'up' : undefined;
          },
          45_000,
          100,
        );
        if (outcome === 'up') return;
        throw new Error('the demo exited during startup');
      } catch (err) {
        const result = await d.stop('SIGTERM', 15_000);
        const busy = /EADDRINUSE|did not start/.test(result.stderr);
        if (!busy || attempt >= 3) {
          throw new Error(`${(err as Error).message}\nstdout:\n${result.stdout.slice(-2000)}\nstderr:\n${result.stderr.slice(-2000)}`);
        }
      }
    }
  });

  after(async () => {
    if (demo && !demo.exited) await demo.stop('SIGTERM', 15_000);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('prints where everything runs', async () => {
    await waitFor('the banner', () => (demo!.stdout.includes('Ctrl-C stops everything') ? true : undefined), 10_000, 20);
    assert.match(demo!.stdout, /meshgate demo is running/);
    assert.ok(demo!.stdout.includes(base), `the banner names ${base}`);
  });

  test('GET /catalog/items returns the catalog, served by both catalog-1 and catalog-2', async () => {
    const instances = new Set<string>();
    // The latency-aware balancer keeps sequential requests on the quicker instance; concurrent
    // ones load it and spill to the other. Bounded: at most 10 batches of 8.
    for (let batch = 0; batch < 10 && instances.size < 2; batch++) {
      const replies = await Promise.all(Array.from({ length: 8 }, () => get(`${base}/catalog/items`)));
      for (const r of replies) {
      assert.equal(r.status, 200, r.text);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const body = JSON.parse(r.text) as { instance: string; items: Array<{ id: number; name: string; price: number }> };
      assert.equal(typeof body.instance, 'string');
      assert.ok(Array.isArray(body.items) && body.items.length > 0, 'a non-empty item list');
      for (const item of body.items) {
        assert.equal(typeof item.id, 'number');
        assert.equal(typeof item.name, 'string');
        assert.equal(typeof item.price, 'number');
      }
      assert.equal(r.headers['x-served-by'], body.instance);
      assert.equal(typeof r.headers['x-request-id'], 'string');
      instances.add(body.instance);
      }
    }
    assert.deepEqual([...instances].sort(), ['catalog-1', 'catalog-2']);
  });

  test('GET /orders/42 builds an order through the orders sidecar (east-west)', async () => {
    const r = await get(`${base}/orders/42`);
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text) as {
      instance: string;
      order: { id: number; lines: Array<{ item: { id: number; name: string; price: number }; quantity: number }>; total: number };
      catalogInstance: string;
    };
    assert.equal(body.instance, 'orders-1');
    assert.equal(body.order.id, 42);
    assert.ok(Array.isArray(body.order.lines) && body.order.lines.length > 0);
    for (const line of body.order.lines) {
      assert.equal(typeof line.item.name, 'string');
      assert.ok(line.quantity > 0);
    }
    const total = body.order.lines.reduce((sum, l) => sum + l.item.price * l.quantity, 0);
    assert.equal(body.order.total, total);
    assert.ok(body.catalogInstance === 'catalog-1' || body.catalogInstance === 'catalog-2', `catalogInstance ${body.catalogInstance}`);
  });

  test('the inventory gRPC service answers at the edge as gRPC (h2c) and as gRPC-Web', async () => {
    const def = loader.loadSync(resolve(import.meta.dirname, '../../examples/demo-services/inventory.proto'), { keepCase: true, defaults: true });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pkg = grpc.loadPackageDefinition(def) as any;
    const client = new pkg.demo.inventory.Inventory(`127.0.0.1:${8080 + offset}`, grpc.credentials.createInsecure());
    try {
      const item = await waitFor('GetItem through the edge', () =>
        new Promise<{ name: string } | undefined>((res) => client.GetItem({ sku: 'cup-1' }, (err: unknown, r: { name: string }) => res(err ? undefined : r))), 15_000, 200);
      assert.equal(item.name, 'espresso cup');
      const missing = await new Promise<grpc.ServiceError>((res) => client.GetItem({ sku: 'nope' }, (err: grpc.ServiceError) => res(err)));
      assert.equal(missing.code, grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
    // gRPC-Web, as a browser sends it: one framed GetItemRequest { sku: "cup-1" }.
    const message = (def['demo.inventory.Inventory'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): { name: string } }>).GetItem;
    const payload = message.requestSerialize({ sku: 'cup-1' });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
    const res = await fetch(`${base}/demo.inventory.Inventory/GetItem`, { method: 'POST', body: frame, headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', origin: 'https://shop.example' } });
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^application\/grpc-web/);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const decoded = decodeGrpcWebResponse(Buffer.from(await res.arrayBuffer()), 'binary');
    assert.equal(decoded.trailers['grpc-status'], '0');
    assert.equal(message.responseDeserialize(decoded.messages[0]).name, 'espresso cup');
  });

  test('an unknown path → 404 NO_ROUTE as JSON', async () => {
    const r = await get(`${base}/nowhere`);
    assert.equal(r.status, 404);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const body = JSON.parse(r.text) as { error: { code: string; message: string; requestId: string } };
    assert.equal(body.error.code, 'NO_ROUTE');
    assert.equal(body.error.requestId, r.headers['x-request-id']);
  });

  test('HTTPS on 8443+offset with the development certificate: HTTP/2 by ALPN, kept across runs', async () => {
    const http2 = await import('node:http2');
    const session = http2.connect(`https://127.0.0.1:${8443 + offset}`, { rejectUnauthorized: false });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/catalog/items' });
        let status = 0;
        let body = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('error', reject);
        s.end();
      });
      assert.equal(status, 200);
      assert.ok(JSON.parse(body).items, body);
      assert.equal(session.alpnProtocol, 'h2');
    } finally {
      session.close();
    }
    assert.ok(existsSync(`${dir}/tls/dev-cert.pem`) && existsSync(`${dir}/tls/dev-key.pem`), 'the certificate is kept in the state directory');
  });

  test('the gateway admin API answers on 9901+offset', async () => {
    const ready = await get(`http://127.0.0.1:${9901 + offset}/ready`);
    assert.equal(ready.status, 200);
    const endpoints = JSON.parse((await get(`http://127.0.0.1:${9901 + offset}/endpoints`)).text) as { services: Record<string, Array<{ id: string }>> };
    assert.deepEqual(endpoints.services.catalog.map((e) => e.id).sort(), ['catalog-1', 'catalog-2']);
    assert.deepEqual(endpoints.services.orders.map((e) => e.id), ['orders-1']);
  });

  test('mesh hops are mTLS: identities on /identity, plaintext to an inbound port refused, the edge admitted', async () => {
    // 1. the gateway and a sidecar hold their SPIFFE identities, issued by the demo's CA
    const gw = JSON.parse((await get(`http://127.0.0.1:${9901 + offset}/identity`)).text) as { identity: string; serial: string; notAfter: string };
    assert.equal(gw.identity, 'spiffe://cluster.local/ns/default/sa/edge');
    assert.ok(Date.parse(gw.notAfter) > Date.now());
    const sc = JSON.parse((await get(`http://127.0.0.1:${4191 + offset}/identity`)).text) as { identity: string };
    assert.equal(sc.identity, 'spiffe://cluster.local/ns/default/sa/catalog');
    assert.ok(existsSync(`${dir}/ca/root.pem`), 'the CA is kept in the state directory');
    // 2. plain HTTP to catalog-1's inbound listener gets no HTTP answer (the TLS server drops it)
    const plain = await get(`http://127.0.0.1:${4143 + offset}/items`, 5000).then((r) => `status ${r.status}`, (err: Error) => `refused: ${err.message}`);
    assert.match(plain, /^refused/);
    // 3. the edge → orders → catalog path still works, so every hop presented an admitted identity
    assert.equal((await get(`${base}/orders/7`)).status, 200);
  });

  test('SIGINT stops the demo: exit 0, and the demo services are gone', async () => {
    const d = demo!;
    // The services are up before the signal.
    for (const p of APP_PORTS) assert.equal(await accepts(p + offset), true, `demo service on ${p + offset} is up`);
    const services = demoServicePids(d.child.pid!);
    if (existsSync('/proc/self/stat')) assert.equal(services.length, 4, 'four demo service processes (catalog x2, orders, inventory)');

    const exit = await d.stop('SIGINT', 30_000);
    assert.equal(exit.signal, null, `exited by itself, not killed; stderr: ${exit.stderr.slice(-1000)}`);
    assert.equal(exit.code, 0, `exit code; stderr: ${exit.stderr.slice(-1000)}`);

    // Every port the demo used stops accepting (the service children were stopped, not orphaned).
    for (const p of DEMO_PORTS) {
      await waitFor(`port ${p + offset} to stop accepting`, async () => ((await accepts(p + offset)) ? undefined : true), 10_000, 100);
    }
    // And the service processes themselves are gone.
    await waitFor('the demo service processes to be gone', () => (services.every((pid) => !isDemoService(pid)) ? true : undefined), 10_000, 100);
  });
});
