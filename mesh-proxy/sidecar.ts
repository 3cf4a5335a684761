// A sidecar mesh proxy beside one service instance: inbound (peers → app), outbound (app → mesh),
// admin; registered in the store while it runs.
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../config/schema.ts';
import { parseDuration } from '../config/duration.ts';
import { createAdminServer } from './admin/admin-server.ts';
import { endpointsView } from './admin/endpoints-view.ts';
import { registerSplitRoutes } from './admin/split-routes.ts';
import { SplitTable } from './traffic/split-table.ts';
import { createH2Pool, createPool } from './client/endpoint-pools.ts';
import { MeshClient } from './client/mesh-client.ts';
import { DEFAULT_POLICY } from './client/policy.ts';
import { Endpoint } from './discovery/endpoint.ts';
import { EndpointCache } from './discovery/endpoint-cache.ts';
import { Registration } from './discovery/registration.ts';
import { ProxyListener } from './http/proxy-listener.ts';
import { InboundRouter, type InboundAuthorization } from './inbound/inbound-router.ts';
import { buildInboundChains, type InboundSnapshot } from './inbound/inbound-plugins.ts';
import { Reloader } from '../config/reloader.ts';
import { loadProxyConfig } from '../config/load.ts';
import { pluginChainMetrics } from '../plugins/chain-metrics.ts';
import { Authorizer } from './inbound/authorize.ts';
import { createMtlsServer } from './identity/mtls-server.ts';
import { WorkloadIdentity } from './identity/workload-identity.ts';
import { createLogger, type Logger } from './observe/log.ts';
import { Metrics } from './observe/metrics.ts';
import { OutboundRouter } from './outbound/outbound-router.ts';
import { createStore } from './store/create-store.ts';
import type { Instance, Store } from './store/types.ts';

/** Time between deregistering and closing connections: peers learn of it by pub/sub in milliseconds. */
const DEREGISTER_GRACE_MS = 500;

export interface SidecarDeps {
  /** A store shared with other proxies in this process (the embedded demo). */
  store?: Store;
  log?: Logger;
  /** The config file: plugin paths resolve against its directory. */
  configFile?: string;
}

export interface Sidecar {
  readonly instance: Instance;
  readonly inbound: AddressInfo;
  readonly outbound: AddressInfo;
  readonly admin: AddressInfo;
  readonly log: Logger;
  stop(): Promise<void>;
}

export async function startSidecar(config: ProxyConfig, deps: SidecarDeps = {}): Promise<Sidecar> {
  const node = config.node;
  const instanceId = node.instance ?? `${node.service}-${hostname()}-${process.pid}`;
  const log = deps.log ?? createLogger(config.log, { component: 'proxy', service: node.service, instance: instanceId });
  const metrics = new Metrics(node.dc);
  const store = deps.store ?? (await createStore(config.store, log));
  const cache = new EndpointCache({
    store,
    resyncMs: parseDuration(config.discovery.resync),
    snapshotFile: join(config.discovery.stateDir, `endpoints-proxy-${instanceId}.json`),
    log,
    metrics,
    startTimeoutMs: parseDuration(config.store.connectTimeout),
    reconnectGraceMs: parseDuration(config.discovery.reconnectGrace),
  });
  // With a mesh section: inbound is mTLS, the instance registers its identity, outbound calls to
  // endpoints that registered one are mTLS.
  const identity = config.mesh ? new WorkloadIdentity({ mesh: config.mesh, service: node.service, log, metrics }) : undefined;
  const splits = new SplitTable(store, parseDuration(config.discovery.resync), log, metrics);
  const client = new MeshClient({ cache, services: config.services, store, metrics, log, origin: `proxy/${instanceId}`, zone: node.zone, identity, splits });

  const appInstance: Instance = { service: node.service, id: 'app', address: config.app.address, port: config.app.port, dc: node.dc, zone: node.zone, metadata: {} };
  const appEndpoint = new Endpoint(appInstance);
  const inboundTimeoutMs = parseDuration(config.inboundTimeout);
  const appPolicy = { ...DEFAULT_POLICY, requestTimeoutMs: inboundTimeoutMs };
  // An h2c app (a gRPC server) gets multiplexed HTTP/2 sessions; the others a keep-alive pool.
  const appPool = config.app.protocol === 'h2c' ? createH2Pool(config.app.address, config.app.port, appPolicy) : createPool(appEndpoint.origin, appPolicy);
  const inboundSeries = metrics.requests.series('inbound', node.service, '');
  const accessLog = config.log.access;

  const authorize = config.inbound.authorize;
  const authz: InboundAuthorization | undefined = authorize && {
    authorizer: new Authorizer(authorize, config.mesh),
    denied: metrics.counter('meshgate_authz_denied_total', 'Inbound requests refused by inbound.authorize (403 FORBIDDEN).', ['service']),
    log,
  };
  const inboundRouter = new InboundRouter(node.service, appEndpoint, appPool, inboundSeries, inboundTimeoutMs, authz);
  inboundRouter.websocketIdleMs = parseDuration(config.inboundWebsocketIdleTimeout);
  const inboundListener = new ProxyListener({ direction: 'inbound', edge: false, accessLog, log, metrics, router: inboundRouter });
  const outboundListener = new ProxyListener({
    direction: 'outbound', edge: false, accessLog, log, metrics,
    router: new OutboundRouter(client, metrics.requests),
  });

  let registration: Registration | undefined;
  let stopping = false;
  const admin = createAdminServer({
    log,
    metrics: metrics.registry,
    token: config.admin.token,
    notReadyReason: () => {
      if (stopping) return 'draining';
      if (cache.source === 'none') return 'endpoints not yet synced';
      return undefined;
    },
  });
  admin.get('/endpoints', async () => endpointsView(cache, client));
  registerSplitRoutes(admin, splits, store.splits, log);
  admin.get('/instance', async () => ({ instance: registration?.instance, store: store.status }));
  admin.get('/identity', async (_req, reply) =>
    identity ? identity.describe() : reply.fail(404, 'NO_IDENTITY', 'this proxy has no mesh identity (no mesh section): its hops are plain HTTP'),
  );

  const owned: Array<() => Promise<unknown>> = [];
  let inboundState: InboundSnapshot | undefined;
  const drainMs = parseDuration(config.drainTimeout);
  const retired = new Map<NodeJS.Timeout, InboundSnapshot>();
  const build = (c: ProxyConfig) => buildInboundChains(c, deps.configFile, log, metrics, store.rateLimits);
  const reloader = deps.configFile
    ? new Reloader<ProxyConfig, InboundSnapshot>({
        file: deps.configFile,
        log,
        load: (f) => loadProxyConfig(f),
        build,
        current: () => inboundState!,
        swap: (next) => {
          const old = inboundState!;
          inboundState = next;
          inboundRouter.chain = next.chains.chains.get('');
          const t = setTimeout(() => {
            retired.delete(t);
            void old.chains.close();
          }, drainMs);
          t.unref();
          retired.set(t, old);
        },
        watch: true,
        reloads: pluginChainMetrics(metrics.registry).reloads,
        restartSections: ['node', 'app', 'inbound', 'outbound', 'admin', 'registration', 'store', 'discovery', 'log', 'drainTimeout', 'services', 'inboundTimeout', 'mesh'],
      })
    : undefined;
  const closeInbound = async () => {
    reloader?.stop();
    for (const [t, old] of retired) {
      clearTimeout(t);
      await old.chains.close();
    }
    await inboundState?.chains.close();
  };
  admin.post('/reload', async (_req, reply) => {
    if (!reloader) return reply.code(400).send({ applied: false, error: 'the proxy was not started from a config file' });
    const r = await reloader.reload('request');
    return reply.code(r.applied ? 200 : 400).send(r);
  });
  try {
    inboundState = await build(config);
    owned.push(closeInbound);
    inboundRouter.chain = inboundState.chains.chains.get('');
    await reloader?.start();
    await identity?.start();
    await cache.start();
    await splits.start();
    await client.start();
    const inboundServer = identity ? createMtlsServer(identity, log) : undefined;
    const inbound = await inboundListener.listen(config.inbound.address, config.inbound.port, inboundServer);
    owned.push(() => inboundListener.close(0));
    const outbound = await outboundListener.listen(config.outbound.address, config.outbound.port);
    owned.push(() => outboundListener.close(0));
    await admin.listen({ host: config.admin.address, port: config.admin.port });
    const adminAddr = admin.server.address() as AddressInfo;

    const instance: Instance = {
      service: node.service,
      id: instanceId,
      address: advertiseAddress(node.address, config.inbound.address),
      port: inbound.port,
      dc: node.dc,
      zone: node.zone,
      metadata: node.metadata,
      ...(identity ? { identity: identity.id } : {}),
      // Callers then speak HTTP/2 to this sidecar (h2 by ALPN over mTLS, h2c in plaintext).
      ...(config.app.protocol === 'h2c' ? { protocol: 'h2' as const } : {}),
    };
    registration = new Registration({
      store, instance, log,
      ttlMs: parseDuration(config.registration.ttl),
      heartbeatMs: parseDuration(config.registration.heartbeat),
    });
    await registration.start();
    log.info({ inbound: fmt(inbound), outbound: fmt(outbound), admin: fmt(adminAddr), app: appEndpoint.authority, store: store.kind, identity: identity?.id ?? null }, 'mesh proxy started');

    const reg = registration;
    return {
      instance, inbound, outbound, admin: adminAddr, log,
      async stop() {
        if (stopping) return;
        stopping = true;
        const drainMs = parseDuration(config.drainTimeout);
        const deadline = Date.now() + drainMs;
        // 1. Leave the registry, and give peers a moment to see it before their pooled connections
        //    to this inbound are closed (the preStop pause Kubernetes meshes rely on).
        await reg.stop();
        await new Promise((r) => setTimeout(r, Math.min(DEREGISTER_GRACE_MS, drainMs)));
        // 2. Drain inbound first: the app may still call other services while it finishes those
        //    requests, so outbound closes last, within the same budget.
        await inboundListener.close(Math.max(0, deadline - Date.now()));
        await outboundListener.close(Math.max(0, deadline - Date.now()));
        await admin.close();
        splits.stop();
        await cache.stop();
        await Promise.allSettled([client.close(), appPool.close(), closeInbound()]);
        identity?.stop();
        if (!deps.store) await store.close();
        log.info({}, 'mesh proxy stopped');
        log.flush();
      },
    };
  } catch (err) {
    identity?.stop();
    await Promise.allSettled(owned.map((f) => f()));
    await admin.close().catch(() => {});
    splits.stop();
    await cache.stop();
    await client.close();
    await appPool.close();
    if (!deps.store) await store.close();
    throw err;
  }
}

function advertiseAddress(configured: string | undefined, bound: string): string {
  if (configured) return configured;
  if (bound !== '0.0.0.0' && bound !== '::') return bound;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function fmt(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
