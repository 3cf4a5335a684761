// In-process meshes for behaviour tests: real sockets, real HTTP, real proxies (startSidecar /
// startGateway), sharing one store (in memory, or a test redis-server).
import { request } from 'undici';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import type { Store } from '../../mesh-proxy/store/types.ts';
import { tempDir } from './cli.ts';
import { startApp, type TestApp } from './upstream.ts';

export interface Instance {
  app: TestApp;
  sidecar: Sidecar;
}

const quiet = { level: 'silent', access: false } as const;

export async function startInstance(store: Store | { url: string }, service: string, id: string, extra: Record<string, unknown> = {}): Promise<Instance> {
  const app = await startApp(id);
  const storeCfg = 'url' in store ? { store: { kind: 'redis', url: store.url } } : {};
  const sidecar = await startSidecar(
    buildProxyConfig(
      {
        node: { service, instance: id, zone: 'z1' },
        app: { port: app.port },
        inbound: { address: '127.0.0.1', port: 0 },
        outbound: { address: '127.0.0.1', port: 0 },
        admin: { port: 0 },
        registration: { ttl: '3s', heartbeat: '1s' },
        discovery: { resync: '500ms', stateDir: tempDir() },
        log: quiet,
        ...storeCfg,
        ...extra,
      },
      `test:${id}`,
    ),
    'url' in store ? {} : { store },
  );
  return { app, sidecar };
}

export async function startTestGateway(store: Store | { url: string }, services: Record<string, unknown>, routes: unknown[], name = 'edge'): Promise<Gateway> {
  const storeCfg = 'url' in store ? { store: { kind: 'redis', url: store.url } } : {};
  return startGateway(
    buildGatewayConfig(
      {
        node: { name, zone: 'z1' },
        listeners: { http: { address: '127.0.0.1', port: 0 } },
        admin: { port: 0 },
        discovery: { resync: '500ms', stateDir: tempDir() },
        log: quiet,
        services,
        routes,
        ...storeCfg,
      },
      `test:${name}`,
    ),
    'url' in store ? {} : { store },
  );
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

/** One request with undici (fetch would drop a Host header set by the caller). */
export async function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body) };
}

export async function stopAll(...things: Array<{ stop?: () => Promise<void>; close?: () => Promise<void> } | undefined>): Promise<void> {
  await Promise.allSettled(things.map((t) => (t?.stop ? t.stop() : t?.close?.())));
}
