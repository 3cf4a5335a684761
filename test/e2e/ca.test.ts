// meshgate's CA through its CLI, checked with Node's own X.509 and TLS: keys 0600, chains that
// verify, SPIFFE identities, and a TLS server that requires a mesh certificate accepting a valid
// one and refusing none, another CA's, and an expired one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { identityOf, initCa, issueLeaf, loadCa } from '../../mesh-proxy/identity/ca.ts';
import { runCli, tempDir } from '../helpers/cli.ts';

const dir = tempDir('meshgate-ca-');
const out = join(dir, 'out');
const caDir = join(dir, 'ca');

test('ca init and ca issue write a CA and a leaf whose chain and identity verify', async () => {
  // 1. init: root and intermediate; private keys readable by the owner only
  const init = await runCli(['ca', 'init', '--dir', caDir, '--trust-domain', 'example.org', '--intermediate']);
  assert.equal(init.code, 0, init.stderr);
  for (const key of ['root.key', 'intermediate.key']) assert.equal(statSync(join(caDir, key)).mode & 0o777, 0o600, key);
  // 2. a second init without --force is refused
  const again = await runCli(['ca', 'init', '--dir', caDir]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists/);
  // 3. issue: the leaf carries the SPIFFE identity and the requested lifetime
  const issue = await runCli(['ca', 'issue', '--dir', caDir, '--service', 'catalog', '--namespace', 'shop', '--ttl', '2h', '--out', out]);
  assert.equal(issue.code, 0, issue.stderr);
  const info = JSON.parse(issue.stdout) as { identity: string; notAfter: string };
  assert.equal(info.identity, 'spiffe://example.org/ns/shop/sa/catalog');
  const lifetime = Date.parse(info.notAfter) - Date.now();
  assert.ok(lifetime > 1.9 * 3_600_000 && lifetime <= 2 * 3_600_000, `lifetime ${lifetime} ms`);
  assert.equal(statSync(join(out, 'catalog.key')).mode & 0o777, 0o600);
  // 4. leaf → intermediate → root, verified by Node (OpenSSL)
  const pems = readFileSync(join(out, 'catalog.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/).filter((p) => p.includes('BEGIN'));
  assert.equal(pems.length, 2, 'leaf and intermediate');
  const [leaf, intermediate] = pems.map((p) => new X509Certificate(p));
  const root = new X509Certificate(readFileSync(join(out, 'ca.pem')));
  assert.ok(leaf.verify(intermediate.publicKey));
  assert.ok(intermediate.verify(root.publicKey));
  assert.ok(root.verify(root.publicKey));
  assert.equal(leaf.ca, false);
  assert.equal(intermediate.ca, true);
  assert.equal(identityOf(pems[0]), info.identity);
});

test('a TLS server requiring mesh certificates accepts a valid one and refuses none, a foreign CA and an expired one', async (t) => {
  const ca = await loadCa(caDir);
  const server = issueLeaf(ca, { service: 'catalog', namespace: 'default', ttlMs: 3_600_000 });
  const srv = tls.createServer({ key: server.keyPem, cert: server.certChainPem, ca: ca.rootCert, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.end(identityOf(s.getPeerX509Certificate()!.toString()) ?? 'none');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  const port = (srv.address() as { port: number }).port;

  const connect = (client: { key?: string; cert?: string }): Promise<string> =>
    new Promise((resolve) => {
      // The client checks the server against the mesh root; identity checks come with mTLS routing.
      const s = tls.connect({ port, host: '127.0.0.1', ca: ca.rootCert, checkServerIdentity: () => undefined, ...client });
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve(data || 'closed'));
      s.on('error', (err: NodeJS.ErrnoException) => resolve(`error:${err.code ?? err.message}`));
    });

  // 1. a valid workload certificate: accepted, its identity visible to the server
  const orders = issueLeaf(ca, { service: 'orders', namespace: 'default', ttlMs: 3_600_000 });
  assert.equal(await connect({ key: orders.keyPem, cert: orders.certChainPem }), 'spiffe://example.org/ns/default/sa/orders');
  // 2. no certificate
  assert.match(await connect({}), /^(error:|closed)/);
  // 3. a certificate from another CA
  const foreign = await initCa(join(dir, 'foreign'), 'evil.example', false);
  const rogue = issueLeaf(foreign, { service: 'orders', namespace: 'default', ttlMs: 3_600_000 });
  assert.match(await connect({ key: rogue.keyPem, cert: rogue.certChainPem }), /^(error:|closed)/);
  // 4. an expired certificate from the right CA
  const expired = issueLeaf(ca, { service: 'orders', namespace: 'default', ttlMs: -1000 });
  assert.match(await connect({ key: expired.keyPem, cert: expired.certChainPem }), /^(error:|closed)/);
});
