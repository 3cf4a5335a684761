// `meshgate demo`: the whole path on one machine with nothing else installed. The edge gateway and
// three sidecars run in this process and share the embedded (in-memory) store; the demo services
// are separate Node processes that know nothing of meshgate.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { createLogger, type Logger } from '../../mesh-proxy/observe/log.ts';
import { initCa } from '../../mesh-proxy/identity/ca.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import { EXIT_OK, reportStartupError, runUntilSignal } from '../lifecycle.ts';
import { youngGenerationServing } from '../young-generation.ts';
import { developmentCertificate, startApp, startDemoStore, stopChild, waitForPort, type DemoStore } from './demo-support.ts';

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

With --dcs 2, two datacenters on this machine, each with its own store (a redis-server of its own
when the binary is installed, the in-memory store otherwise): dc-1 is the above; dc-2 has
catalog-3 and catalog-4 and its own edge (http://127.0.0.1:8180, admin :10001). The edges fail
over to each other; kill -USR2 <demo pid> stops dc-1's catalog instances (and again starts them).

Options:
  --dcs N           1 (default) or 2 datacenters
  --port-offset N   add N to every port the demo uses (default 0)
  --state-dir DIR   where proxies keep their endpoint snapshots (default .meshgate/demo)
  --access-log      print one JSON access-log line per request from every proxy
  -h, --help        show this help`;

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
      dcs: { type: 'string', default: '1' },
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
  const dcCount = Number(values.dcs);
  if (dcCount !== 1 && dcCount !== 2) {
    process.stderr.write('meshgate demo: --dcs must be 1 or 2\n');
    return 2;
  }
  const twoDcs = dcCount === 2;
  const p = (port: number) => port + offset;
  const instances: DemoInstance[] = [
    { service: 'catalog', id: 'catalog-1', app: p(3001), outbound: p(4140), inbound: p(4143), admin: p(4191), version: 'v1' },
    { service: 'catalog', id: 'catalog-2', app: p(3002), outbound: p(4240), inbound: p(4243), admin: p(4291), version: 'v1' },
    { service: 'orders', id: 'orders-1', app: p(3003), outbound: p(4340), inbound: p(4343), admin: p(4391), version: 'v1' },
    { service: 'inventory', id: 'inventory-1', app: p(3004), outbound: p(4440), inbound: p(4443), admin: p(4491), version: 'v1', protocol: 'h2c' },
  ];
  // dc-2 (with --dcs 2): two catalog instances of its own.
  const dc2Instances: DemoInstance[] = [
    { service: 'catalog', id: 'catalog-3', app: p(3101), outbound: p(4540), inbound: p(4543), admin: p(4591), version: 'v1' },
    { service: 'catalog', id: 'catalog-4', app: p(3102), outbound: p(4640), inbound: p(4643), admin: p(4691), version: 'v1' },
  ];
  const dc1 = twoDcs ? 'dc-1' : 'local';
  const stateDir = values['state-dir'];
  const log = createLogger({ level: 'info' }, {});
  const stores: DemoStore[] = [];
  const running = new Map<string, { child: ChildProcess; sidecar: Sidecar | undefined }>();
  const gateways: Gateway[] = [];

  // A SIGUSR2 toggle still starting instances when Ctrl-C comes is waited for, or what it starts
  // would outlive the shutdown.
  let toggling: Promise<unknown> = Promise.resolve();
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    await toggling.catch(() => {});
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all([...running.values()].map((r) => r.sidecar?.stop()));
    await Promise.all([...running.values()].map((r) => stopChild(r.child)));
    await Promise.all(stores.map((s) => s.stop()));
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

  /** An instance: its app as a child process, then its sidecar (registered in its datacenter's store). */
  const startInstance = async (inst: DemoInstance, dc: string, store: DemoStore) => {
    const child = startApp(inst);
    running.set(inst.id, { child, sidecar: undefined });
    await waitForPort(inst.app, 10_000);
    const config = buildProxyConfig(
      {
        node: { service: inst.service, instance: inst.id, dc, zone: `${dc}-a`, metadata: { version: inst.version } },
        app: { address: '127.0.0.1', port: inst.app, protocol: inst.protocol ?? 'http1' },
        inbound: { address: '127.0.0.1', port: inst.inbound, authorize: authorize[inst.service] },
        mesh,
        outbound: { address: '127.0.0.1', port: inst.outbound },
        admin: { port: inst.admin },
        discovery: { stateDir },
        log: { access: values['access-log'] },
        ...(store.config ? { store: store.config } : {}),
      },
      `demo:${inst.id}`,
    );
    const sidecar = await startSidecar(config, { ...(store.store ? { store: store.store } : {}), log: log.child({ component: 'proxy', instance: inst.id }) });
    running.set(inst.id, { child, sidecar });
  };
  const stopInstance = async (id: string) => {
    const r = running.get(id);
    running.delete(id);
    await r?.sidecar?.stop();
    if (r) await stopChild(r.child);
  };

  try {
    if (!existsSync(join(caDir, 'ca.json'))) await initCa(caDir, mesh.trustDomain, false);
    const devCert = await developmentCertificate(stateDir);
    stores.push(await startDemoStore(p(6391), twoDcs));
    for (const inst of instances) await startInstance(inst, dc1, stores[0]);
    const gwConfig = buildGatewayConfig(
      {
        node: { name: 'demo-edge', dc: dc1, zone: `${dc1}-a` },
        listeners: {
          http: { address: '127.0.0.1', port: p(8080) },
          https: { address: '127.0.0.1', port: p(8443), certificates: [devCert] },
          ...(twoDcs ? { peer: { address: '127.0.0.1', port: p(9444) } } : {}),
        },
        admin: { port: p(9901) },
        mesh: { ...mesh, service: 'edge' },
        discovery: { stateDir },
        log: { access: values['access-log'] },
        ...(stores[0].config ? { store: stores[0].config } : {}),
        ...(twoDcs ? { datacenters: { failover: { failbackAfter: '3s' }, peers: [{ dc: 'dc-2', address: '127.0.0.1', port: p(9544) }] } } : {}),
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
    gateways.push(await startGateway(gwConfig, { ...(stores[0].store ? { store: stores[0].store } : {}), log: log.child({ component: 'gateway', dc: dc1 }) }));
    if (twoDcs) {
      stores.push(await startDemoStore(p(6392), true));
      for (const inst of dc2Instances) await startInstance(inst, 'dc-2', stores[1]);
      gateways.push(await startSecondEdge(p, mesh, stateDir, stores[1], values['access-log'] ?? false, log));
    }
  } catch (err) {
    await stopAll().catch(() => {});
    return reportStartupError('demo', err);
  }
  const gateway = gateways[0];

  const base = `http://127.0.0.1:${gateway.http.port}`;
  const secure = `https://127.0.0.1:${gateway.https?.port}`;
  process.stdout.write(
    [
      '',
      `meshgate demo is running (${stores.map((s, i) => (twoDcs ? `dc-${i + 1}: ${s.description}` : s.description)).join(', ')}; every process on 127.0.0.1, mTLS between proxies):`,
      `  edge gateway  ${base}  ${secure}   admin http://127.0.0.1:${gateway.admin.port}${twoDcs ? '   (dc-1)' : ''}`,
      ...instances.map((i) => `  ${i.id.padEnd(10)}    app :${i.app}  sidecar outbound :${i.outbound} inbound :${i.inbound} admin :${i.admin}`),
      ...(twoDcs
        ? [
            `  edge gateway  http://127.0.0.1:${gateways[1].http.port}   admin http://127.0.0.1:${gateways[1].admin.port}   (dc-2)`,
            ...dc2Instances.map((i) => `  ${i.id.padEnd(10)}    app :${i.app}  sidecar outbound :${i.outbound} inbound :${i.inbound} admin :${i.admin}   (dc-2)`),
          ]
        : []),
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
      ...(twoDcs
        ? [
            'Two datacenters:',
            `  curl -s http://127.0.0.1:${gateway.admin.port}/datacenters    # dc-1's failover plan: all local while catalog is healthy`,
            `  kill -USR2 ${process.pid}                       # stop dc-1's catalog instances (again: start them)`,
            `  curl -s ${base}/catalog/items          # now answered by catalog-3 / catalog-4 in dc-2, without an error`,
            `  meshgate status --admin http://127.0.0.1:${gateway.admin.port}    # endpoints per datacenter, breakers, the failover state`,
            '',
          ]
        : []),
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  if (twoDcs) {
    // SIGUSR2: dc-1's catalog instances go away (deregistered, stopped), or come back.
    let down = false;
    process.on('SIGUSR2', () => {
      if (stopping) return;
      const dc1Catalog = instances.filter((i) => i.service === 'catalog');
      const work = toggling.then(() => {
        down = !down;
        return down ? Promise.all(dc1Catalog.map((i) => stopInstance(i.id))) : Promise.all(dc1Catalog.map((i) => startInstance(i, dc1, stores[0])));
      });
      toggling = work.catch(() => {});
      work.then(
        () => log.info({}, down ? "dc-1's catalog instances stopped: dc-1's edge now fails over to dc-2" : "dc-1's catalog instances are back: dc-1's edge fails back after 3 s"),
        (err: Error) => log.error({ err: err.message }, 'could not toggle the catalog instances'),
      );
    });
  }
  youngGenerationServing();
  return runUntilSignal('demo', stopAll);
}

/** dc-2's edge: catalog only, peering with dc-1's. */
async function startSecondEdge(p: (port: number) => number, mesh: { trustDomain: string; caDir: string }, stateDir: string, store: DemoStore, accessLog: boolean, log: Logger): Promise<Gateway> {
  const config = buildGatewayConfig(
    {
      node: { name: 'demo-edge-2', dc: 'dc-2', zone: 'dc-2-a' },
      listeners: { http: { address: '127.0.0.1', port: p(8180) }, peer: { address: '127.0.0.1', port: p(9544) } },
      admin: { port: p(10001) },
      mesh: { ...mesh, service: 'edge' },
      discovery: { stateDir },
      log: { access: accessLog },
      ...(store.config ? { store: store.config } : {}),
      services: { catalog: { timeouts: { request: '5s' } } },
      routes: [{ name: 'catalog', match: { pathPrefix: '/catalog', methods: ['GET', 'HEAD'] }, rewrite: { stripPrefix: true }, service: 'catalog' }],
      datacenters: { failover: { failbackAfter: '3s' }, peers: [{ dc: 'dc-1', address: '127.0.0.1', port: p(9444) }] },
    },
    'demo:gateway-2',
  );
  return startGateway(config, { ...(store.store ? { store: store.store } : {}), log: log.child({ component: 'gateway', dc: 'dc-2' }) });
}
