// Real processes: `meshgate ca serve` signs for a `meshgate proxy` whose mesh section names it
// (mesh.signer); the proxy serves mTLS with that identity. A proxy with a wrong token does not start
// (exit 1, the signer's refusal in the message); `ca serve` without a token is a usage error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadCa, issueLeaf } from '../../mesh-proxy/identity/ca.ts';
import { MeshgateProcess, runCli, tempDir, writeConfig } from '../helpers/cli.ts';
import { tlsRequest } from '../helpers/mtls.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const TOKEN = 'e2e-bootstrap-token-0123456789';

describe('meshgate ca serve', () => {
  const dir = tempDir('meshgate-ca-serve-');
  const caDir = join(dir, 'ca');
  let signer: MeshgateProcess;
  let signerPort = 0;
  let app: TestApp;
  const procs: MeshgateProcess[] = [];

  before(async () => {
    assert.equal((await runCli(['ca', 'init', '--dir', caDir])).code, 0);
    signerPort = await freePort();
    signer = new MeshgateProcess(['ca', 'serve', '--dir', caDir, '--port', String(signerPort)], { MESHGATE_BOOTSTRAP_TOKEN: TOKEN });
    await waitFor('the signer to listen', () => (signer.stdout.includes('signing for trust domain') ? true : signer.exited ? Promise.reject(new Error(signer.stderr)) : undefined), 20_000);
    app = await startApp('catalog-app');
  });
  after(async () => {
    await Promise.all([...procs, signer].map((p) => p?.stop('SIGTERM')));
    await app?.close();
  });

  function proxyConfig(token: string, ports: { inbound: number; outbound: number; admin: number }): string {
    return writeConfig(dir, `proxy-${ports.admin}.yaml`, {
      node: { service: 'catalog', instance: `catalog-${ports.admin}` },
      app: { port: app.port },
      inbound: { address: '127.0.0.1', port: ports.inbound },
      outbound: { address: '127.0.0.1', port: ports.outbound },
      admin: { port: ports.admin },
      store: { kind: 'memory' },
      discovery: { stateDir: join(dir, 'state') },
      mesh: { signer: { url: `https://127.0.0.1:${signerPort}`, token, ca: join(caDir, 'root.pem') }, ttl: '1h' },
    });
  }

  test('a proxy gets its certificate from the signer and serves mTLS with it', async () => {
    const ports = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    const proxy = new MeshgateProcess(['proxy', '--config', proxyConfig(TOKEN, ports)], { MESHGATE_REDIS_URL: '' });
    procs.push(proxy);
    await proxy.ready(`http://127.0.0.1:${ports.admin}`);
    const id = (await (await fetch(`http://127.0.0.1:${ports.admin}/identity`)).json()) as { identity: string; source: string };
    assert.deepEqual([id.identity, id.source], ['spiffe://cluster.local/ns/default/sa/catalog', 'signer']);
    const ca = await loadCa(caDir);
    const r = await tlsRequest(ports.inbound, '/x', { rootPem: ca.rootCert, client: issueLeaf(ca, { service: 'orders', namespace: 'default', ttlMs: 60_000 }) });
    assert.equal(r.status, 200);
    assert.equal(app.received.at(-1)?.headers['x-meshgate-client-id'], 'spiffe://cluster.local/ns/default/sa/orders');
  });

  test('a wrong bootstrap token: the proxy does not start; ca serve without a token: usage error', async () => {
    const ports = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    const proxy = new MeshgateProcess(['proxy', '--config', proxyConfig('wrong-token-wrong-token', ports)], { MESHGATE_REDIS_URL: '' });
    procs.push(proxy);
    const exit = await proxy.wait();
    assert.equal(exit.code, 1, exit.stderr);
    assert.match(exit.stderr, /signer refused \(401 UNAUTHORIZED/);
    const noToken = await runCli(['ca', 'serve', '--dir', caDir], { MESHGATE_BOOTSTRAP_TOKEN: '' });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /bootstrap token/);
  });
});
