// What a scenario measures: "direct" (no proxy), meshgate, the Node peers and, where their binaries
// exist, nginx and HAProxy with upstream keep-alive configured as their docs advise, one worker each.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { buildIsFresh, ROOT } from '../bin/entry.js';
import { startNginx } from './nginx.ts';
import { startPinned, tcpOk, which, type Pinned } from './proc.ts';
import { benchCertificate, httpsOk } from './tls.ts';

/** `reference`: a calibration row (a bare forwarder), shown but never counted as a peer. */
export type TargetKind = 'direct' | 'meshgate' | 'node-peer' | 'native-peer' | 'reference';

export interface Target {
  name: string;
  kind: TargetKind;
  port: number;
  /** https targets are driven over TLS (and HTTP/2 where the scenario says so). */
  scheme?: 'https';
  /** Starts the proxy pinned to `core`; null for "direct". */
  start(core: number, upstreamPorts: number[], workDir: string): Promise<Pinned | null>;
}

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

async function httpOk(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
  if (res) await res.arrayBuffer().catch(() => {});
  return res?.status === 200;
}

async function adminReady(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined);
  if (res) await res.arrayBuffer().catch(() => {});
  return res?.status === 200;
}

function node(name: string, kind: TargetKind, port: number, file: string, extraEnv: Record<string, string> = {}, tls = false, readyOnAdmin = false): Target {
  return {
    name,
    kind,
    port,
    ...(tls ? { scheme: 'https' as const } : {}),
    start: async (core, upstreamPorts, workDir) => {
      const cert = tls ? await benchCertificate(workDir) : undefined;
      // meshgate runs from its compiled build when that is current, as an installed meshgate does.
      const built = file.endsWith('.ts') && buildIsFresh() ? join(ROOT, 'dist', 'loadtest', file.replace(/^\.\//, '').replace(/\.ts$/, '.js')) : undefined;
      const args = built ? [built] : file.endsWith('.ts') ? ['--import', 'tsx', here(file)] : [here(file)];
      return startPinned(core, process.execPath, args, {
        env: {
          PORT: String(port),
          UPSTREAM_PORT: String(upstreamPorts[0]),
          UPSTREAM_PORTS: upstreamPorts.join(','),
          ADMIN_PORT: String(port + 1),
          STATE_DIR: workDir,
          ...(cert ? { TLS_CERT: cert.cert, TLS_KEY: cert.key } : {}),
          ...extraEnv,
        },
        ipc: true,
        // A target whose route needs credentials answers / with 401: ask its admin API instead.
        ready: () => (readyOnAdmin ? adminReady(port + 1) : tls ? httpsOk(port) : httpOk(port)),
      });
    },
  };
}

/** Scenario plugins: the same edge without and with a plugin chain on the route. */
export function pluginTargets(basePort: number, pluginEnv: Record<string, string>): Target[] {
  return [
    { name: 'direct', kind: 'direct', port: 0, start: async () => null },
    node('meshgate, no plugins', 'meshgate', basePort, './servers/meshgate-edge.ts'),
    node('meshgate, jwt-auth + rate-limit + cors + headers', 'meshgate', basePort + 10, './servers/meshgate-edge.ts', { PLUGINS: '1', ...pluginEnv }, false, true),
  ];
}

/** Scenario slow-instance: meshgate's balancers over three upstreams, one of them 50 ms slower. */
export function balancerTargets(basePort: number): Target[] {
  return [
    node('meshgate p2c-ewma', 'meshgate', basePort, './servers/meshgate-edge.ts', { BALANCER: 'p2c-ewma' }),
    node('meshgate least-request', 'meshgate', basePort + 10, './servers/meshgate-edge.ts', { BALANCER: 'least-request' }),
    node('meshgate round-robin', 'meshgate', basePort + 20, './servers/meshgate-edge.ts', { BALANCER: 'round-robin' }),
  ];
}

/**
 * Scenario sidecar: `meshgate proxy --config FILE`, started as a user starts it (bin/meshgate.js,
 * its own process), serving its inbound listener to the app at a fixed rate; as it runs by default
 * (young generation capped) and with V8's own young-generation sizing. The store is a
 * redis-server when one was started for the run (REDIS_URL), as in production.
 */
export function sidecarTargets(basePort: number, env: Record<string, string>): Target[] {
  const sidecar = (name: string, port: number, nodeOptions: string): Target => ({
    name,
    kind: 'meshgate',
    port,
    start: (core, upstreamPorts, workDir) => {
      const file = join(workDir, `sidecar-${port}.yaml`);
      writeFileSync(
        file,
        [
          `node: { service: bench, instance: bench-${port} }`,
          `app: { port: ${upstreamPorts[0]} }`,
          `inbound: { address: 127.0.0.1, port: ${port} }`,
          `outbound: { address: 127.0.0.1, port: ${port + 1} }`,
          `admin: { address: 127.0.0.1, port: ${port + 2} }`,
          env.REDIS_URL ? `store: { kind: redis, url: "${env.REDIS_URL}", keyPrefix: "sidecar-${port}:" }` : '',
          `discovery: { stateDir: ${JSON.stringify(join(workDir, `sidecar-${port}`))} }`,
          'log: { level: warn, access: false }',
          '',
        ].join('\n'),
      );
      return startPinned(core, process.execPath, [join(ROOT, 'bin', 'meshgate.js'), 'proxy', '--config', file], {
        env: { NODE_OPTIONS: nodeOptions },
        ready: () => httpOk(port),
        timeoutMs: 30_000,
      });
    },
  });
  return [
    { name: 'direct', kind: 'direct', port: 0, start: async () => null },
    sidecar('meshgate proxy', basePort, ''),
    // The sidecar caps V8's young generation; the flag gives V8 its own sizing back.
    sidecar("meshgate proxy, V8's young-generation sizing (--max-semi-space-size=16)", basePort + 10, '--max-semi-space-size=16'),
  ];
}

/** Scenarios mesh-latency and mesh-mtls: no proxy vs the full edge → sidecar → app path, plain and mTLS. */
export function meshPathTargets(basePort: number, withPlain = true): Target[] {
  return [
    { name: 'direct', kind: 'direct', port: 0, start: async () => null },
    ...(withPlain ? [node('meshgate edge → sidecar → app', 'meshgate', basePort, './servers/meshgate-mesh.ts')] : []),
    node('meshgate edge → sidecar → app, mTLS hop', 'meshgate', basePort + 10, './servers/meshgate-mesh.ts', { MTLS: '1' }),
  ];
}

export function allTargets(basePort: number): Target[] {
  const t: Target[] = [
    { name: 'direct', kind: 'direct', port: 0, start: async () => null },
    node('meshgate', 'meshgate', basePort, './servers/meshgate-edge.ts'),
    node('meshgate (access log on)', 'meshgate', basePort + 10, './servers/meshgate-edge.ts', { ACCESS_LOG: '1' }),
    node('fastify + @fastify/http-proxy', 'node-peer', basePort + 20, './servers/fastify-http-proxy.mjs'),
    node('http-proxy', 'node-peer', basePort + 30, './servers/http-proxy.mjs'),
    node('fast-gateway 3.4.7', 'node-peer', basePort + 40, './servers/fast-gateway.mjs'),
    node('bare node:http + undici Pool (reference)', 'reference', basePort + 70, './servers/bare-undici.mjs'),
  ];
  if (which('nginx')) t.push(nginx(basePort + 50));
  if (which('haproxy')) t.push(haproxy(basePort + 60));
  return t;
}

/**
 * Scenario grpc-unary: unary gRPC calls over h2c through the edge (route grpc: true, service
 * protocol h2c), and through nginx's grpc_pass when it exists.
 */
export function grpcTargets(basePort: number): Target[] {
  const t: Target[] = [
    { name: 'direct', kind: 'direct', port: 0, start: async () => null },
    node('meshgate', 'meshgate', basePort, './servers/meshgate-edge.ts', { GRPC: '1', POOL: '4' }, false, true),
  ];
  if (which('nginx')) t.push(nginxGrpc(basePort + 50));
  return t;
}

function nginxGrpc(port: number): Target {
  return {
    name: 'nginx (grpc_pass)',
    kind: 'native-peer',
    port,
    start: (core, [upstreamPort], workDir) =>
      startNginx(
        core,
        join(workDir, 'nginx-grpc'),
        `  upstream grpcbench { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} http2;
    http2_max_concurrent_streams 256;
    keepalive_requests 1000000;
    location / { grpc_pass grpc://grpcbench; }
  }`,
        // A TCP connect is enough: the HTTP/2 listener answers HTTP/1.1 probes with garbage.
        () => tcpOk(port),
      ),
  };
}

/**
 * Scenario tls-h2: TLS + HTTP/2 at the edge to an HTTP/1.1 upstream. Upstream pools are sized for
 * the streams in flight (50 connections × 10 streams), as each peer's docs advise.
 */
export function tlsH2Targets(basePort: number): Target[] {
  const t: Target[] = [
    node('meshgate', 'meshgate', basePort, './servers/meshgate-edge.ts', { POOL: '512' }, true),
    node('fastify (http2) + @fastify/http-proxy', 'node-peer', basePort + 20, './servers/fastify-h2-proxy.mjs', {}, true),
  ];
  if (which('nginx')) t.push(nginxH2(basePort + 50));
  if (which('haproxy')) t.push(haproxyH2(basePort + 60));
  return t;
}

function nginxH2(port: number): Target {
  return {
    name: 'nginx',
    kind: 'native-peer',
    port,
    scheme: 'https',
    start: async (core, [upstreamPort], workDir) => {
      const cert = await benchCertificate(workDir);
      return startNginx(
        core,
        join(workDir, 'nginx-h2'),
        `  upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 512; }
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${cert.cert}; ssl_certificate_key ${cert.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 256;
    keepalive_requests 1000000;
    location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`,
        () => httpsOk(port),
      );
    },
  };
}

function haproxyH2(port: number): Target {
  return {
    name: 'HAProxy',
    kind: 'native-peer',
    port,
    scheme: 'https',
    start: async (core, [upstreamPort], workDir) => {
      const cert = await benchCertificate(workDir);
      const conf = join(workDir, 'haproxy-h2.cfg');
      writeFileSync(
        conf,
        `global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend bench_in
  bind 127.0.0.1:${port} ssl crt ${cert.bundle} alpn h2,http/1.1
  default_backend bench
backend bench
  server s1 127.0.0.1:${upstreamPort} maxconn 1000
`,
      );
      return startPinned(core, 'haproxy', ['-f', conf, '-db'], { ready: () => httpsOk(port) });
    },
  };
}

function nginx(port: number): Target {
  return {
    name: 'nginx',
    kind: 'native-peer',
    port,
    start: (core, [upstreamPort], workDir) =>
      startNginx(
        core,
        join(workDir, 'nginx'),
        `  upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`,
        () => httpOk(port),
      ),
  };
}

function haproxy(port: number): Target {
  return {
    name: 'HAProxy',
    kind: 'native-peer',
    port,
    start: (core, [upstreamPort], workDir) => {
      const conf = join(workDir, 'haproxy.cfg');
      writeFileSync(
        conf,
        `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend bench_in
  bind 127.0.0.1:${port}
  default_backend bench
backend bench
  server s1 127.0.0.1:${upstreamPort} maxconn 1000
`,
      );
      return startPinned(core, 'haproxy', ['-f', conf, '-db'], { ready: () => httpOk(port) });
    },
  };
}
