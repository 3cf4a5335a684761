// `meshgate gateway --workers N`: one process per core sharing the HTTP listener (node:cluster).
// The primary forks and supervises workers and serves the admin API for all of them: /metrics is
// the sum over workers (prom-client's AggregatorRegistry), /endpoints and /routes are asked of a
// worker over IPC, /ready waits for every worker. Shared state (discovery, breakers) goes through
// the store, so with Redis the workers act as one gateway; with the in-memory store each keeps its own.
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { parseSplitSpec, SplitError } from '../mesh-proxy/traffic/split.ts';
import { ExplainError } from './explain.ts';
import { AggregatorRegistry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.ts';
import { parseDuration } from '../config/duration.ts';
import { createAdminServer, type AdminReply } from '../mesh-proxy/admin/admin-server.ts';
import { createLogger, type Logger } from '../mesh-proxy/observe/log.ts';
import { Metrics } from '../mesh-proxy/observe/metrics.ts';
import { startGatewayCore, type GatewayCore, type GatewayViews } from './gateway.ts';

const READY = 'meshgate:ready';
const VIEW_REQ = 'meshgate:view';
const VIEW_RES = 'meshgate:view-reply';
const RESTART_DELAY_MS = 1000;

interface Message {
  type?: string;
  id?: number;
  view?: keyof Pick<GatewayViews, 'endpoints' | 'routes' | 'identity' | 'datacenters'> | 'reload' | 'explain' | 'splits' | 'split-put' | 'split-delete';
  body?: unknown;
}

export interface ClusterPrimary {
  readonly admin: AddressInfo;
  stop(): Promise<void>;
}

/**
 * In the primary: forks `workers` gateways and serves the admin API. Resolves once every worker is
 * ready; rejects (having stopped the rest) if a worker exits before the first generation is up, e.g.
 * on a port in use: restarting it would only fail again.
 */
export async function startClusterPrimary(config: GatewayConfig, workers: number): Promise<ClusterPrimary> {
  const log = createLogger(config.log, { component: 'gateway-primary', node: config.node.name });
  if (config.store.kind === 'memory') {
    log.warn({ workers }, 'with the in-memory store each worker keeps its own breakers and discovery view; use Redis to share them');
  }
  const ready = new Set<number>();
  let stopping = false;
  let nextId = 0;
  const pending = new Map<number, (body: unknown) => void>();

  let started = false;
  let onStartup: ((err?: Error) => void) | undefined;
  const startup = new Promise<void>((resolve, reject) => {
    onStartup = (err) => (err ? reject(err) : resolve());
  });
  startup.catch(() => {}); // awaited below; a worker may fail before that await is reached
  const fork = (): Worker => {
    const w = cluster.fork({ MESHGATE_CLUSTER_WORKER: '1' });
    w.on('message', (m: Message) => {
      if (m?.type === READY) {
        ready.add(w.id);
        if (!started && ready.size === workers) {
          started = true;
          onStartup?.();
        }
      }
      else if (m?.type === VIEW_RES && m.id !== undefined) {
        pending.get(m.id)?.(m.body);
        pending.delete(m.id);
      }
    });
    return w;
  };
  // Each worker watches the config file itself; a SIGHUP to the primary reaches them all.
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
  cluster.on('exit', (w, code, signal) => {
    ready.delete(w.id);
    if (stopping) return;
    if (!started) {
      stopping = true;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      onStartup?.(new Error(`a gateway worker exited during start-up (${signal ?? `code ${code}`}); see its error above`));
      return;
    }
    log.error({ worker: w.process.pid, code, signal }, 'gateway worker exited; starting another');
    setTimeout(() => {
      if (!stopping) fork();
    }, RESTART_DELAY_MS).unref();
  });
  for (let i = 0; i < workers; i++) fork();

  const aggregator = new AggregatorRegistry();
  const readyWorkers = () => Object.values(cluster.workers ?? {}).filter((x): x is Worker => x !== undefined && ready.has(x.id));
  const askWorker = (view: NonNullable<Message['view']>, w: Worker | undefined = readyWorkers()[0], timeoutMs = 2000, body?: unknown): Promise<unknown> => {
    if (!w) return Promise.resolve({ error: { code: 'NOT_READY', message: 'no gateway worker is ready' } });
    const id = ++nextId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve({ error: { code: 'WORKER_TIMEOUT', message: 'the worker did not answer' } });
      }, timeoutMs);
      pending.set(id, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
      w.send({ type: VIEW_REQ, id, view, body } satisfies Message);
    });
  };
  const admin = createAdminServer({
    log,
    metrics: { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() },
    token: config.admin.token,
    notReadyReason: () => (stopping ? 'draining' : ready.size < workers ? `${ready.size} of ${workers} workers ready` : undefined),
  });
  admin.get('/endpoints', () => askWorker('endpoints'));
  admin.get('/routes', () => askWorker('routes'));
  // Every worker reloads its own snapshot; the answer says how each fared.
  admin.post('/reload', async (_req, reply) => {
    const results = (await Promise.all(readyWorkers().map((w) => askWorker('reload', w, 30_000)))) as Array<{ applied?: boolean }>;
    const applied = results.length > 0 && results.every((r) => r.applied === true);
    return reply.code(applied ? 200 : 400).send({ applied, workers: results });
  });
  // Splits live in the store every worker shares: one worker reads or writes them for the primary.
  const replied = (reply: AdminReply, r: unknown) => {
    const e = r as { status?: number; error?: unknown; body?: unknown };
    return e.status !== undefined ? reply.code(e.status).send(e.body ?? { error: e.error }) : r;
  };
  admin.get('/splits', () => askWorker('splits'));
  admin.get('/splits/:service', async (req, reply) => {
    const all = (await askWorker('splits')) as { splits?: Array<{ service: string }> };
    const one = all.splits?.find((x) => x.service === req.params.service);
    return one ?? reply.fail(404, 'SPLIT_NOT_FOUND', `service "${req.params.service}" has no traffic split`);
  });
  admin.put('/splits/:service', async (req, reply) => replied(reply, await askWorker('split-put', undefined, 5000, { service: req.params.service, body: req.body })));
  admin.delete('/splits/:service', async (req, reply) => replied(reply, await askWorker('split-delete', undefined, 5000, { service: req.params.service })));
  admin.get('/datacenters', async (_req, reply) => (await askWorker('datacenters')) ?? reply.fail(404, 'NO_DATACENTERS', 'this gateway has no peer datacenters (datacenters.peers)'));
  admin.post('/explain', async (req, reply) => replied(reply, await askWorker('explain', undefined, 2000, req.body)));
  // Each worker holds its own mesh identity (same SPIFFE id, its own certificate): one answers.
  admin.get('/identity', async (_req, reply) => (await askWorker('identity')) ?? reply.fail(404, 'NO_IDENTITY', 'this gateway has no mesh identity (no mesh section)'));
  try {
    await admin.listen({ host: config.admin.address, port: config.admin.port });
    await startup;
  } catch (err) {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    await admin.close();
    log.flush();
    throw err instanceof Error && err.message.startsWith('a gateway worker')
      ? err
      : new Error(`cannot listen on ${config.admin.address}:${config.admin.port} for the admin API: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const adminAddr = admin.server.address() as AddressInfo;
  log.info({ workers, admin: `${adminAddr.address}:${adminAddr.port}` }, 'gateway primary started');

  return {
    admin: adminAddr,
    async stop() {
      stopping = true;
      const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      const exited = live.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
      for (const w of live) w.process.kill('SIGTERM');
      // Workers drain within drainTimeout; anything still alive after that (and a margin) is killed.
      const limit = setTimeout(() => live.forEach((w) => w.isDead() || w.process.kill('SIGKILL')), parseDuration(config.drainTimeout) + 5000);
      await Promise.all(exited);
      clearTimeout(limit);
      await admin.close();
      log.info({}, 'gateway primary stopped');
      log.flush();
    },
  };
}

/** In a worker: the gateway without an admin listener, answering the primary's view requests. */
export async function startClusterWorker(config: GatewayConfig, configFile?: string): Promise<GatewayCore> {
  const log: Logger = createLogger(config.log, { component: 'gateway', node: config.node.name, worker: String(cluster.worker?.id ?? '') });
  // Answer the primary's metric requests from the start (constructing an AggregatorRegistry installs
  // prom-client's responder): a worker still connecting to the store must not stall every scrape.
  const metrics = new Metrics(config.node.dc);
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const gw = await startGatewayCore(config, { log, metrics, configFile });
  process.on('message', (m: Message) => {
    if (m?.type !== VIEW_REQ || m.id === undefined || !m.view) return;
    const id = m.id;
    const send = (body: unknown) => process.send?.({ type: VIEW_RES, id, body } satisfies Message);
    if (m.view === 'reload') void gw.reload().then(send);
    else if (m.view === 'explain' || m.view === 'splits' || m.view === 'split-put' || m.view === 'split-delete') void workerAction(gw, m.view, m.body).then(send);
    else send(gw.views[m.view]());
  });
  process.send?.({ type: READY } satisfies Message);
  return {
    ...gw,
    async stop() {
      await gw.stop();
      cluster.worker?.disconnect(); // the IPC channel would keep the process alive
    },
  };
}

/** A worker's side of the admin actions the primary forwards (the same answers as startGateway's admin API). */
async function workerAction(gw: GatewayCore, view: 'explain' | 'splits' | 'split-put' | 'split-delete', body: unknown): Promise<unknown> {
  const fail = (status: number, code: string, message: string) => ({ status, error: { code, message } });
  try {
    if (view === 'explain') return gw.views.explain(body);
    if (view === 'splits') return { splits: gw.splits.table.list() };
    const { service, body: spec } = body as { service: string; body?: unknown };
    if (view === 'split-delete') return (await gw.splits.store.delete(service)) ? { deleted: service } : fail(404, 'SPLIT_NOT_FOUND', `service "${service}" has no traffic split`);
    const expect = (spec as { expectVersion?: number } | undefined)?.expectVersion;
    return await gw.splits.store.put(service, parseSplitSpec(spec), expect);
  } catch (err) {
    if (err instanceof ExplainError) return fail(400, err.code, err.message);
    if (err instanceof SplitError) return fail(err.code === 'SPLIT_CONFLICT' ? 409 : 400, err.code, err.message);
    return fail(503, 'STORE_UNAVAILABLE', (err as Error).message);
  }
}

export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env.MESHGATE_CLUSTER_WORKER === '1';
}
