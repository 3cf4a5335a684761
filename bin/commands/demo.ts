// `meshgate demo`: the whole path on one machine with nothing else installed. The edge gateway and
// three sidecars run in this process and share the embedded (in-memory) store; the demo services
// are separate Node processes that know nothing of meshgate.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { initCa } from '../../mesh-proxy/identity/ca.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { EXIT_OK, reportStartupError, runUntilSignal } from '../lifecycle.ts';

export const DEMO_HELP = `Usage: meshgate demo [options]

Starts, on the in-memory store (no Redis needed):
  the edge gateway      http://127.0.0.1:8080 and https://127.0.0.1:8443 (HTTP/2 and HTTP/1.1;
                        a self-signed development certificate)   (admin http://127.0.0.1:9901)
  catalog-1, catalog-2  catalog service instances, each behind its own sidecar
  orders-1              orders service, which calls catalog through its sidecar
  inventory-1           a gRPC service (demo.inventory.Inventory), reachable at the edge as gRPC
                        (h2c on :8080, h2 on :8443) and as gRPC-Web from browsers
Every mesh hop is mTLS: a demo CA is created in <state-dir>/ca on the first run and kept.
Ctrl-C stops every process.

Options:
  --port-offset N   add N to every port the demo uses (default 0)
  --state-dir DIR   where proxies keep their endpoint snapshots (default .meshgate/demo)
  --access-log      print one JSON access-log line per request from every proxy
  -h, --help        show this help`;

// From bin/commands/ in the sources, or dist/bin/commands/ in the build: the first ancestor holding them.
const SERVICES_DIR = findUp('examples/demo-services/');

function findUp(rel: string): string {
  for (let up = '../../'; up.length <= 15; up += '../') {
    const dir = fileURLToPath(new URL(up + rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error(`cannot find ${rel} above ${import.meta.url}`);
}

interface DemoInstance {
  service: 'catalog' | 'orders' | 'inventory';
  id: string;
  app: number;
  outbound: number;
  inbound: number;
  admin: number;
  version: string;
  /** The app's protocol: the inventory service is a gRPC (h2c) server. */
  protocol?: 'h2c';
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'port-offset': { type: 'string', default: '0' },
      'state-dir': { type: 'string', default: '.meshgate/demo' },
      'access-log': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${DEMO_HELP}\n`);
    return EXIT_OK;
  }
  const offset = Number(values['port-offset']);
  if (!Number.isInteger(offset) || offset < 0 || offset > 50_000) {
    process.stderr.write('meshgate demo: --port-offset must be an integer between 0 and 50000\n');
    return 2;
  }
  const p = (port: number) => port + offset;
  const instances: DemoInstance[] = [
    { service: 'catalog', id: 'catalog-1', app: p(3001), outbound: p(4140), inbound: p(4143), admin: p(4191), version: 'v1' },
    { service: 'catalog', id: 'catalog-2', app: p(3002), outbound: p(4240), inbound: p(4243), admin: p(4291), version: 'v1' },
    { service: 'orders', id: 'orders-1', app: p(3003), outbound: p(4340), inbound: p(4343), admin: p(4391), version: 'v1' },
    { service: 'inventory', id: 'inventory-1', app: p(3004), outbound: p(4440), inbound: p(4443), admin: p(4491), version: 'v1', protocol: 'h2c' },
  ];
  const stateDir = values['state-dir'];
  const log = createLogger({ level: 'info' }, {});
  const store = new MemoryStore();
  const children: ChildProcess[] = [];
  const sidecars: Sidecar[] = [];
  let gateway: Gateway | undefined;

  const stopAll = async () => {
    await gateway?.stop();
    await Promise.all(sidecars.map((s) => s.stop()));
    await Promise.all(children.map(stopChild));
    await store.close();
    log.flush();
  };

  // mTLS on every hop: one CA for the demo, kept across runs; each proxy issues its own leaves from it.
  const caDir = join(stateDir, 'ca');
  const mesh = { trustDomain: 'cluster.local', caDir };
  // Who may call whom: the edge calls catalog and orders; orders calls catalog.
  const authorize = {
    catalog: { default: 'deny', allow: [{ from: ['edge', 'orders'] }] },
    orders: { default: 'deny', allow: [{ from: 'edge' }] },
    inventory: { default: 'deny', allow: [{ from: 'edge' }] },
  };

  try {
    if (!existsSync(join(caDir, 'ca.json'))) await initCa(caDir, mesh.trustDomain, false);
    const devCert = await developmentCertificate(stateDir);
    for (const inst of instances) {
      children.push(startApp(inst));
      await waitForPort(inst.app, 10_000);
      const config = buildProxyConfig(
        {
          node: { service: inst.service, instance: inst.id, dc: 'local', zone: 'local-a', metadata: { version: inst.version } },
          app: { address: '127.0.0.1', port: inst.app, protocol: inst.protocol ?? 'http1' },
          inbound: { address: '127.0.0.1', port: inst.inbound, authorize: authorize[inst.service] },
          mesh,
          outbound: { address: '127.0.0.1', port: inst.outbound },
          admin: { port: inst.admin },
          discovery: { stateDir },
          log: { access: values['access-log'] },
        },
        `demo:${inst.id}`,
      );
      sidecars.push(await startSidecar(config, { store, log: log.child({ component: 'proxy', instance: inst.id }) }));
    }
    const gwConfig = buildGatewayConfig(
      {
        node: { name: 'demo-edge', dc: 'local', zone: 'local-a' },
        listeners: {
          http: { address: '127.0.0.1', port: p(8080) },
          https: { address: '127.0.0.1', port: p(8443), certificates: [devCert] },
        },
        admin: { port: p(9901) },
        mesh: { ...mesh, service: 'edge' },
        discovery: { stateDir },
        log: { access: values['access-log'] },
        services: {
          catalog: { timeouts: { request: '5s' } },
          orders: { timeouts: { request: '10s' } },
          inventory: { timeouts: { request: '10s' }, healthCheck: { interval: '2s', grpc: { service: 'demo.inventory.Inventory' } } },
        },
        routes: [
          { name: 'catalog', match: { pathPrefix: '/catalog', methods: ['GET', 'HEAD'] }, rewrite: { stripPrefix: true }, service: 'catalog' },
          { name: 'orders', match: { pathPrefix: '/orders' }, service: 'orders' },
          {
            name: 'inventory',
            match: { pathPrefix: '/demo.inventory.Inventory' },
            service: 'inventory',
            grpc: true,
            // Browsers call it with gRPC-Web from any page: CORS with the gRPC-Web headers exposed.
            plugins: [{ cors: { origins: ['*'], exposeHeaders: ['grpc-status', 'grpc-message'] } }],
          },
        ],
      },
      'demo:gateway',
    );
    gateway = await startGateway(gwConfig, { store, log: log.child({ component: 'gateway' }) });
  } catch (err) {
    await stopAll().catch(() => {});
    return reportStartupError('demo', err);
  }

  const base = `http://127.0.0.1:${gateway.http.port}`;
  const secure = `https://127.0.0.1:${gateway.https?.port}`;
  process.stdout.write(
    [
      '',
      'meshgate demo is running (in-memory store, every process on 127.0.0.1, mTLS between proxies):',
      `  edge gateway  ${base}  ${secure}   admin http://127.0.0.1:${gateway.admin.port}`,
      ...instances.map((i) => `  ${i.id.padEnd(10)}    app :${i.app}  sidecar outbound :${i.outbound} inbound :${i.inbound} admin :${i.admin}`),
      '',
      'Try:',
      `  curl -s ${base}/catalog/items          # catalog JSON; "instance" says which of catalog-1 / catalog-2 answered`,
      `  curl -s ${base}/orders/42              # orders calls catalog through its sidecar (east-west)`,
      `  curl -sk --http2 ${secure}/catalog/items   # the same over TLS and HTTP/2 (-k: the development certificate is self-signed)`,
      `  curl -s ${base}/nowhere                # 404 NO_ROUTE as JSON`,
      `  grpcurl -plaintext -import-path examples/demo-services -proto inventory.proto -d '{"sku":"cup-1"}' 127.0.0.1:${gateway.http.port} demo.inventory.Inventory/GetItem`,
      `                                         # gRPC through the edge (h2c); -insecure 127.0.0.1:${gateway.https?.port} for h2 over TLS`,
      `  printf '\\x00\\x00\\x00\\x00\\x07\\x0a\\x05cup-1' | curl -s --data-binary @- -H 'content-type: application/grpc-web+proto' ${base}/demo.inventory.Inventory/GetItem | od -c | head`,
      `                                         # the same call as gRPC-Web (what a browser sends); the trailers are the last frame`,
      `  curl -s http://127.0.0.1:${gateway.admin.port}/endpoints   # what the gateway knows`,
      `  curl -s http://127.0.0.1:${gateway.admin.port}/metrics     # Prometheus metrics`,
      `  curl -s http://127.0.0.1:${gateway.admin.port}/identity    # the gateway's mesh identity (spiffe://cluster.local/ns/default/sa/edge)`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  return runUntilSignal('demo', stopAll);
}

/** The demo's HTTPS certificate for localhost / 127.0.0.1, made on the first run and kept in the state dir. */
async function developmentCertificate(stateDir: string): Promise<{ cert: string; key: string }> {
  const dir = join(stateDir, 'tls');
  const files = { cert: join(dir, 'dev-cert.pem'), key: join(dir, 'dev-key.pem') };
  if (existsSync(files.cert) && existsSync(files.key)) return files;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = await selfSignedCertificate(['localhost', '127.0.0.1', '::1'], 365);
  await writeFile(files.key, pair.key, { mode: 0o600 });
  await writeFile(files.cert, pair.cert);
  return files;
}

function startApp(inst: DemoInstance): ChildProcess {
  const child = spawn(process.execPath, [`${SERVICES_DIR}${inst.service}.mjs`], {
    env: { ...process.env, PORT: String(inst.app), INSTANCE: inst.id, MESH_OUTBOUND_PORT: String(inst.outbound) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`demo service ${inst.id} exited (${signal ?? code})\n`);
  });
  return child;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`demo service on port ${port} did not start within ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
