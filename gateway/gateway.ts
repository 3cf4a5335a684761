// The edge gateway: the HTTP listener and route table in front of the same mesh client the
// sidecars use, plus its admin API.
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { GatewayConfig } from '../config/schema.ts';
import { parseDuration } from '../config/duration.ts';
import { createAdminServer } from '../mesh-proxy/admin/admin-server.ts';
import { endpointsView } from '../mesh-proxy/admin/endpoints-view.ts';
import { MeshClient } from '../mesh-proxy/client/mesh-client.ts';
import { EndpointCache } from '../mesh-proxy/discovery/endpoint-cache.ts';
import { ProxyListener } from '../mesh-proxy/http/proxy-listener.ts';
import { createLogger, type Logger } from '../mesh-proxy/observe/log.ts';
import { Metrics } from '../mesh-proxy/observe/metrics.ts';
import { createStore } from '../mesh-proxy/store/create-store.ts';
import type { Store } from '../mesh-proxy/store/types.ts';
import { pluginChainMetrics } from '../plugins/chain-metrics.ts';
import { WorkloadIdentity } from '../mesh-proxy/identity/workload-identity.ts';
import { EdgeRouter } from './edge-router.ts';
import { Reloader, type ReloadResult } from '../config/reloader.ts';
import { loadGatewayConfig } from '../config/load.ts';
import { buildSnapshot, type GatewaySnapshot } from './snapshot.ts';
import { createEdgeHttps, type EdgeHttps } from './listeners/https-server.ts';
import { RedirectRouter } from './listeners/redirect.ts';
import { clientInputs, Datacenters } from './datacenters/setup.ts';
import { SplitTable } from '../mesh-proxy/traffic/split-table.ts';
import { ExplainError, explainRequest } from './explain.ts';
import { registerSplitRoutes } from '../mesh-proxy/admin/split-routes.ts';
import type { SplitStore } from '../mesh-proxy/store/types.ts';
import { dirname, resolve } from 'node:path';

export interface GatewayDeps {
  /** The file the config came from: enables hot reload, and relative paths resolve against it. */
  configFile?: string;
  store?: Store;
  log?: Logger;
  metrics?: Metrics;
}

/** The admin API's JSON views; a cluster primary asks a worker for them over IPC. */
export interface GatewayViews {
  endpoints(): object;
  routes(): object;
  notReadyReason(): string | undefined;
  /** The mesh identity (mesh section), or undefined when the gateway's mesh hops are plain HTTP. */
  identity(): object | undefined;
  /** Failover between datacenters (GET /datacenters), when the gateway has peers. */
  datacenters(): object | undefined;
  /** What the gateway would do with a request, and why (POST /explain). */
  explain(input: unknown): object;
}

/** The gateway without its admin listener: what a cluster worker runs. */
export interface GatewayCore {
  readonly http: AddressInfo;
  /** The HTTPS listener's address, when listeners.https is configured. */
  readonly https: AddressInfo | undefined;
  /** The peer listener's address (other datacenters fail over here), when listeners.peer is configured. */
  readonly peer: AddressInfo | undefined;
  /** Traffic splits: what this gateway applies, and where they are changed. */
  readonly splits: { readonly table: SplitTable; readonly store: SplitStore };
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly views: GatewayViews;
  /** Reloads the config file now (as a change, SIGHUP or POST /reload would). */
  reload(): Promise<ReloadResult>;
  stop(): Promise<void>;
}

export interface Gateway extends GatewayCore {
  readonly admin: AddressInfo;
}

/** A gateway with its own admin API. */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<Gateway> {
  const core = await startGatewayCore(config, deps);
  const admin = createAdminServer({ log: core.log, metrics: core.metrics.registry, token: config.admin.token, notReadyReason: core.views.notReadyReason });
  admin.get('/endpoints', async () => core.views.endpoints());
  admin.get('/routes', async () => core.views.routes());
  admin.post('/reload', async (_req, reply) => {
    const r = await core.reload();
    return reply.code(r.applied ? 200 : 400).send(r);
  });
  registerSplitRoutes(admin, core.splits.table, core.splits.store, core.log);
  admin.post('/explain', async (req, reply) => {
    try {
      return core.views.explain(req.body);
    } catch (err) {
      if (err instanceof ExplainError) return reply.fail(400, err.code, err.message);
      throw err;
    }
  });
  admin.get('/datacenters', async (_req, reply) => core.views.datacenters() ?? reply.fail(404, 'NO_DATACENTERS', 'this gateway has no peer datacenters (datacenters.peers)'));
  admin.get('/identity', async (_req, reply) => core.views.identity() ?? reply.fail(404, 'NO_IDENTITY', 'this gateway has no mesh identity (no mesh section)'));
  try {
    await admin.listen({ host: config.admin.address, port: config.admin.port });
  } catch (err) {
    await core.stop();
    throw new Error(`cannot listen on ${config.admin.address}:${config.admin.port} for the admin API: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const adminAddr = admin.server.address() as AddressInfo;
  core.log.info({ admin: `${adminAddr.address}:${adminAddr.port}` }, 'admin API listening');
  return {
    ...core,
    admin: adminAddr,
    async stop() {
      await core.stop();
      await admin.close();
    },
  };
}

export async function startGatewayCore(config: GatewayConfig, deps: GatewayDeps = {}): Promise<GatewayCore> {
  const log = deps.log ?? createLogger(config.log, { component: 'gateway', node: config.node.name });
  const metrics = deps.metrics ?? new Metrics(config.node.dc);
  const store = deps.store ?? (await createStore(config.store, log));
  const cache = new EndpointCache({
    store,
    resyncMs: parseDuration(config.discovery.resync),
    snapshotFile: join(config.discovery.stateDir, `endpoints-gateway-${config.node.name}.json`),
    log,
    metrics,
    startTimeoutMs: parseDuration(config.store.connectTimeout),
    reconnectGraceMs: parseDuration(config.discovery.reconnectGrace),
  });
  // mesh: the gateway → sidecar hop is mTLS, with the gateway's own identity (mesh.service, default node.name).
  const identity = config.mesh ? new WorkloadIdentity({ mesh: config.mesh, service: config.mesh.service ?? config.node.name, log, metrics }) : undefined;
  // With peer datacenters, their edges are endpoints too (`service@dc`, gateway/datacenters).
  const inputs = clientInputs(config, cache);
  const splits = new SplitTable(store, parseDuration(config.discovery.resync), log, metrics);
  const client = new MeshClient({ cache: inputs.source, services: inputs.services, store, metrics, log, origin: `gateway/${config.node.name}`, zone: config.node.zone, identity, splits });
  const snapshotDeps = { file: deps.configFile, log, metrics, rateLimits: store.rateLimits };
  let snapshot: GatewaySnapshot;
  try {
    snapshot = await buildSnapshot(config, snapshotDeps);
  } catch (err) {
    await client.close();
    if (!deps.store) await store.close();
    throw err;
  }
  const router = new EdgeRouter(snapshot.table, client);
  const datacenters = new Datacenters(config, { cache, client, router, identity, metrics, log, peers: inputs.peers });
  const drainMs = parseDuration(config.drainTimeout);
  const retired = new Map<NodeJS.Timeout, GatewaySnapshot>();
  const reloader = deps.configFile
    ? new Reloader<GatewayConfig, GatewaySnapshot>({
        file: deps.configFile,
        log,
        load: (f) => loadGatewayConfig(f),
        restartSections: ['node', 'store', 'listeners', 'admin', 'discovery', 'services', 'log', 'drainTimeout', 'mesh'],
        reloads: pluginChainMetrics(metrics.registry).reloads,
        watch: config.watch,
        current: () => snapshot,
        build: (next) => buildSnapshot(next, snapshotDeps),
        swap: (next) => {
          const old = snapshot;
          snapshot = next;
          router.table = next.table;
          // Requests already in the old chains finish with them; close its plugins afterwards.
          const t = setTimeout(() => {
            retired.delete(t);
            void old.chains.close();
          }, drainMs);
          t.unref();
          retired.set(t, old);
        },
      })
    : undefined;
  const httpsConfig = config.listeners.https;
  const listener = new ProxyListener({
    direction: 'edge', edge: true, accessLog: config.log.access, log, metrics,
    router: config.listeners.http.redirectToHttps && httpsConfig ? new RedirectRouter(router, httpsConfig.port) : router,
    h2c: config.listeners.http.h2c,
  });
  let edgeHttps: EdgeHttps | undefined;

  let stopping = false;
  const views: GatewayViews = {
    endpoints: () => endpointsView(cache, client),
    routes: () => ({
      routes: router.table.routes.map((r) => ({
        name: r.name, service: r.service, prefix: r.prefix,
        hosts: r.exactHosts || r.wildcardHosts ? [...(r.exactHosts ?? []), ...(r.wildcardHosts ?? []).map((w) => `*${w}`)] : null,
        methods: r.methods ? [...r.methods] : null, stripPrefix: r.stripPrefix, replacePrefix: r.replacePrefix,
        plugins: r.chain ? r.chain.links.map((l) => (l.dryRun ? `${l.name} (dry-run)` : l.name)) : [],
      })),
    }),
    notReadyReason: () => (stopping ? 'draining' : cache.source === 'none' ? 'endpoints not yet synced' : undefined),
    identity: () => identity?.describe(),
    datacenters: () => datacenters.failover?.describe(),
    explain: (input) => explainRequest(input, { table: router.table, client, splits, failover: datacenters.failover }),
  };

  try {
    await identity?.start();
    await cache.start();
    await splits.start();
    await client.start();
    await reloader?.start();
    const httpAddr = await listener.listen(config.listeners.http.address, config.listeners.http.port);
    let httpsAddr: AddressInfo | undefined;
    if (httpsConfig) {
      const baseDir = deps.configFile ? dirname(resolve(deps.configFile)) : process.cwd();
      edgeHttps = await createEdgeHttps(httpsConfig, baseDir, log, {
        reloads: metrics.counter('meshgate_tls_certificate_reloads_total', 'Edge certificate reloads after their files changed, by result (applied, rejected).', ['result']),
        handshakeFailures: metrics.counter('meshgate_tls_handshake_failures_total', 'TLS handshakes refused, by direction and reason.', ['direction', 'reason']),
      });
      httpsAddr = await listener.listen(httpsConfig.address, httpsConfig.port, edgeHttps.server);
    }
    await datacenters.start();
    const peerAddr = datacenters.address;
    log.info({ http: `${httpAddr.address}:${httpAddr.port}`, https: httpsAddr ? `${httpsAddr.address}:${httpsAddr.port}` : undefined, peer: peerAddr ? `${peerAddr.address}:${peerAddr.port}` : undefined, dc: config.node.dc, routes: config.routes.length, store: store.kind }, 'gateway started');
    return {
      http: httpAddr, https: httpsAddr, peer: peerAddr, log, metrics, views, splits: { table: splits, store: store.splits },
      reload: () => (reloader ? reloader.reload('request') : Promise.resolve({ applied: false, error: 'the gateway was not started from a config file' })),
      async stop() {
        if (stopping) return;
        stopping = true;
        reloader?.stop();
        edgeHttps?.certificates.stop();
        await Promise.all([listener.close(drainMs), datacenters.stop(drainMs)]);
        for (const [t, old] of retired) {
          clearTimeout(t);
          await old.chains.close();
        }
        await snapshot.chains.close();
        splits.stop();
        await cache.stop();
        await client.close();
        identity?.stop();
        if (!deps.store) await store.close();
        log.info({}, 'gateway stopped');
        log.flush();
      },
    };
  } catch (err) {
    reloader?.stop();
    edgeHttps?.certificates.stop();
    await Promise.all([listener.close(0), datacenters.stop(0)]);
    await snapshot.chains.close();
    identity?.stop();
    splits.stop();
    await cache.stop();
    await client.close();
    if (!deps.store) await store.close();
    throw err;
  }
}
