// gRPC failures count against an endpoint: a server answering UNAVAILABLE (HTTP 200, the status in
// a trailers-only reply) is ejected by outlier detection, as a 503 would be; statuses that reject
// the request (NOT_FOUND, INVALID_ARGUMENT) are not held against the server. Real grpc-js servers
// registered as h2c instances behind a real gateway.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import type { Gateway } from '../../gateway/gateway.ts';
import { echoClient, grpc, startEchoServer, unary, type EchoClient, type EchoServer } from '../helpers/grpc.ts';
import { call, startTestGateway, stopAll } from '../helpers/mesh.ts';
import { waitFor } from '../helpers/ports.ts';

const ECHO = '/meshgate.test.Echo';
const MAX_CALLS = 100;

interface Doc {
  services: Record<string, Array<{ id: string; ejected: { reason: string } | null; breaker: { state: string } }>>;
}

let store: MemoryStore;
let healthy: EchoServer;
let sick: EchoServer;
let gw: Gateway;
let client: EchoClient;

before(async () => {
  store = new MemoryStore();
  healthy = await startEchoServer();
  sick = await startEchoServer();
  for (const [id, s] of [['echo-ok', healthy], ['echo-sick', sick]] as const) {
    await store.registry.register({ service: 'echo', id, address: '127.0.0.1', port: s.port, dc: 'local', zone: 'z1', metadata: {} }, 60_000);
  }
  gw = await startTestGateway(
    store,
    {
      echo: {
        protocol: 'h2c',
        // Every other call to each server, so both see enough of them.
        balancer: 'round-robin',
        retries: { attempts: 0 },
        // The breaker stays out of it: what ejects the endpoint here is outlier detection.
        breaker: { consecutiveFailures: 1000 },
        outlier: { consecutive5xx: 3, maxEjectedPercent: 50 },
      },
    },
    [{ name: 'echo', match: { pathPrefix: ECHO }, service: 'echo', grpc: true }],
  );
  client = echoClient(`127.0.0.1:${gw.http.port}`);
  await waitFor('both endpoints', async () => ((await endpoints()).length === 2 ? true : undefined));
});

after(async () => {
  client?.close();
  await stopAll(gw);
  await healthy?.close();
  await sick?.close();
  await store?.close();
});

async function endpoints() {
  return (await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<Doc>().services.echo ?? [];
}

test('statuses that reject the request (NOT_FOUND) do not eject a server', async () => {
  for (let i = 0; i < 12; i++) {
    const r = await unary(client, { message: 'x', fail_code: grpc.status.NOT_FOUND });
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
  }
  // Six in a row per endpoint, twice the threshold: had they counted, one would be out.
  assert.equal(healthy.unaryCalls, 6);
  assert.equal(sick.unaryCalls, 6);
  for (const ep of await endpoints()) assert.equal(ep.ejected, null, `${ep.id} ejected`);
});

test('a server answering UNAVAILABLE is ejected, and the calls go to the healthy one', async () => {
  sick.failCode = grpc.status.UNAVAILABLE;
  let unavailable = 0;
  // Until the sick one is out: at most consecutive5xx of its answers reach the caller.
  for (let i = 0; i < MAX_CALLS; i++) {
    const r = await unary(client, { message: 'x' });
    if (r.error?.code === grpc.status.UNAVAILABLE) unavailable++;
    const sickOne = (await endpoints()).find((e) => e.id === 'echo-sick');
    if (sickOne?.ejected) break;
  }
  const view = await endpoints();
  assert.equal(view.find((e) => e.id === 'echo-sick')?.ejected?.reason, 'outlier');
  assert.equal(view.find((e) => e.id === 'echo-ok')?.ejected, null);
  assert.equal(unavailable, 3, 'three UNAVAILABLE answers in a row eject it');

  const before = sick.unaryCalls;
  for (let i = 0; i < 20; i++) {
    const r = await unary(client, { message: `ok-${i}` });
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.reply?.message, `ok-${i}`);
  }
  assert.equal(sick.unaryCalls, before, 'no call reached the ejected server');
});
