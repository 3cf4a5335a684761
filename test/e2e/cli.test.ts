// The CLI as a user runs it: help, usage errors, invalid configuration files and a busy port each
// end the process with a clear message and the documented exit code, leaving nothing listening.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir, writeConfig, type RunResult } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';

const dir = tempDir('meshgate-cli-');
const stateDir = join(dir, 'state');
after(() => rmSync(dir, { recursive: true, force: true }));

// Keep the caller's environment from changing what the files say.
const ENV = {
  MESHGATE_REDIS_URL: '',
  MESHGATE_ADMIN_TOKEN: '',
  MESHGATE_DC: '',
  MESHGATE_ZONE: '',
  MESHGATE_INSTANCE: '',
  MESHGATE_ADVERTISE_ADDRESS: '',
  MESHGATE_STATE_DIR: stateDir,
  MESHGATE_LOG_LEVEL: 'warn',
};
const RUN_TIMEOUT_MS = 30_000;
// Each start costs a second or so of CPU (tsx loading the sources): every case runs concurrently,
// but at most this many processes at a time, so a slow machine queues rather than times out.
const MAX_PARALLEL = 4;
let running = 0;
const waiting: Array<() => void> = [];

async function run(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  while (running >= MAX_PARALLEL) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await runCli(args, { ...ENV, ...env }, RUN_TIMEOUT_MS);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function show(r: RunResult): string {
  return `code=${r.code} signal=${r.signal}\nstdout:\n${r.stdout.slice(-1500)}\nstderr:\n${r.stderr.slice(-1500)}`;
}

/** The process ended by itself (not by runCli's timeout kill) with `code`. */
function assertExit(r: RunResult, code: number): void {
  assert.equal(r.signal, null, `killed after ${RUN_TIMEOUT_MS} ms: the process did not exit\n${show(r)}`);
  assert.equal(r.code, code, show(r));
}

function assertNotListening(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(2000);
    s.on('connect', () => {
      s.destroy();
      reject(new Error(`something still listens on 127.0.0.1:${port}`));
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve();
      else reject(err);
    });
    s.on('timeout', () => {
      s.destroy();
      reject(new Error(`connecting to 127.0.0.1:${port} timed out`));
    });
  });
}

function occupy(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer((sock) => sock.destroy());
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function portOf(s: Server): number {
  return (s.address() as { port: number }).port;
}

let fileNo = 0;
function file(config: object | string): string {
  return writeConfig(dir, `config-${++fileNo}.yaml`, config);
}

interface ConfigFile {
  path: string;
  /** The ports the file tells meshgate to listen on (all on 127.0.0.1). */
  ports: number[];
}

/** A valid gateway config on free 127.0.0.1 ports, with `extra` replacing whole top-level keys. */
async function gatewayConfig(extra: Record<string, unknown> = {}): Promise<ConfigFile> {
  const config: Record<string, unknown> = {
    listeners: { http: { address: '127.0.0.1', port: await freePort() } },
    admin: { address: '127.0.0.1', port: await freePort() },
    discovery: { stateDir },
    log: { level: 'warn' },
    services: { catalog: {} },
    routes: [{ name: 'catalog', match: { pathPrefix: '/catalog' }, service: 'catalog' }],
    ...extra,
  };
  const l = config.listeners as { http?: { port?: unknown } } | undefined;
  const a = config.admin as { port?: unknown } | undefined;
  return { path: file(config), ports: [l?.http?.port, a?.port].filter((p): p is number => typeof p === 'number') };
}

/** A valid proxy config on free 127.0.0.1 ports, with `extra` replacing whole top-level keys. */
async function proxyConfig(extra: Record<string, unknown> = {}): Promise<ConfigFile> {
  const config: Record<string, unknown> = {
    node: { service: 'orders', instance: 'orders-test' },
    app: { address: '127.0.0.1', port: await freePort() },
    inbound: { address: '127.0.0.1', port: await freePort() },
    outbound: { address: '127.0.0.1', port: await freePort() },
    admin: { address: '127.0.0.1', port: await freePort() },
    discovery: { stateDir },
    log: { level: 'warn' },
    ...extra,
  };
  const ports = ['inbound', 'outbound', 'admin'].map((k) => (config[k] as { port?: unknown } | undefined)?.port);
  return { path: file(config), ports: ports.filter((p): p is number => typeof p === 'number') };
}

/** An invalid file: exit 2, one message naming the file, the path inside it and what was expected. */
async function expectInvalid(command: 'gateway' | 'proxy', cfg: ConfigFile, expected: RegExp[]): Promise<RunResult> {
  const r = await run([command, '--config', cfg.path]);
  assertExit(r, 2);
  assert.ok(r.stderr.includes(`meshgate ${command}: invalid configuration: ${cfg.path}`), show(r));
  for (const re of expected) assert.match(r.stderr, re, show(r));
  assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace\n${show(r)}`);
  await Promise.all(cfg.ports.map(assertNotListening));
  return r;
}

describe('meshgate CLI', { concurrency: true }, () => {
  describe('help and usage errors', { concurrency: true }, () => {
    test('--help for the top level, gateway, proxy and demo exits 0 with usage', async () => {
      const [top, gw, px, demo] = await Promise.all([run(['--help']), run(['gateway', '--help']), run(['proxy', '--help']), run(['demo', '--help'])]);
      assertExit(top, 0);
      assert.match(top.stdout, /^Usage: meshgate <command> \[options\]/, show(top));
      for (const c of ['gateway --config FILE', 'proxy --config FILE', 'demo', 'help [COMMAND]']) assert.ok(top.stdout.includes(c), c);
      assertExit(gw, 0);
      assert.match(gw.stdout, /^Usage: meshgate gateway --config FILE/, show(gw));
      assert.match(gw.stdout, /MESHGATE_REDIS_URL/);
      assertExit(px, 0);
      assert.match(px.stdout, /^Usage: meshgate proxy --config FILE/, show(px));
      assert.match(px.stdout, /MESHGATE_INSTANCE/);
      assertExit(demo, 0);
      assert.match(demo.stdout, /^Usage: meshgate demo \[options\]/, show(demo));
      assert.match(demo.stdout, /--port-offset N/);
      for (const r of [top, gw, px, demo]) assert.equal(r.stderr, '', show(r));
    });

    test('an unknown command, an unknown option, and gateway without --config exit 2', async () => {
      const [unknownCommand, unknownOption, noConfig] = await Promise.all([run(['frobnicate']), run(['gateway', '--bogus']), run(['gateway'])]);

      assertExit(unknownCommand, 2);
      assert.match(unknownCommand.stderr, /^meshgate: unknown command "frobnicate"/, show(unknownCommand));
      assert.match(unknownCommand.stderr, /Usage: meshgate <command>/);
      assert.equal(unknownCommand.stdout, '');

      assertExit(unknownOption, 2);
      assert.match(unknownOption.stderr, /^meshgate gateway: .*'--bogus'/, show(unknownOption));
      assert.match(unknownOption.stderr, /Usage: meshgate gateway --config FILE/);
      assert.doesNotMatch(unknownOption.stderr, /^\s+at /m, 'no stack trace');

      assertExit(noConfig, 2);
      assert.match(noConfig.stderr, /^meshgate gateway: --config FILE is required/, show(noConfig));
      assert.match(noConfig.stderr, /Usage: meshgate gateway --config FILE/);
    });
  });

  describe('invalid configuration files exit 2 and listen on nothing', { concurrency: true }, () => {
    test('wrong types', async () => {
      const admin = await freePort();
      const cfg = await gatewayConfig({
        listeners: { http: { address: '127.0.0.1', port: 'http' } },
        admin: { address: '127.0.0.1', port: admin },
        drainTimeout: 10,
        node: { name: ['a'] },
      });
      assert.deepEqual(cfg.ports, [admin]);
      await expectInvalid('gateway', cfg, [
        /: 3 problems\n/,
        /\n {2}- listeners\.http\.port: expected a TCP port \(0-65535\), got "http"\n/,
        /\n {2}- drainTimeout: expected a duration such as 250ms, 5s, 1m, got number 10\n/,
        /\n {2}- node\.name: expected a string, got a list\n/,
      ]);
    });

    test('unknown keys', async () => {
      const cfg = await gatewayConfig({ listner: {}, routes: [{ name: 'catalog', service: 'catalog', matchh: { pathPrefix: '/c' } }] });
      await expectInvalid('gateway', cfg, [/2 problems/, /- listner: unknown key/, /- routes\[0\]\.matchh: unknown key/]);
    });

    test('a route to an undefined service', async () => {
      const cfg = await gatewayConfig({
        services: { catalog: {}, orders: {} },
        routes: [
          { name: 'catalog', service: 'catalog' },
          { name: 'orders', service: 'order' },
        ],
      });
      await expectInvalid('gateway', cfg, [/routes\[1\]\.service: service "order" is not defined under services \(defined: catalog, orders\)/]);
    });

    test('an unreadable file', async () => {
      const missing = join(dir, 'does-not-exist.yaml');
      await expectInvalid('gateway', { path: missing, ports: [] }, [/: cannot read the file \(ENOENT\)$/m]);
    });

    test('invalid YAML names the line', async () => {
      const port = await freePort();
      const path = file(`listeners:\n  http: { address: 127.0.0.1, port: ${port} }\nroutes:\n  - name: a\n   service: nope\n`);
      await expectInvalid('gateway', { path, ports: [port] }, [/not valid YAML: .*line 5/]);
    });

    test('proxy: missing required keys', async () => {
      const cfg = await proxyConfig({ node: { instance: 'x' }, app: { address: '127.0.0.1' } });
      await expectInvalid('proxy', cfg, [/- node\.service: is required/, /- app\.port: is required/]);
    });
  });

  describe('a busy port exits 1 naming the address', { concurrency: true }, () => {
    async function withBusyPort(fn: (port: number) => Promise<void>): Promise<void> {
      const busy = await occupy();
      try {
        await fn(portOf(busy));
      } finally {
        await new Promise((r) => busy.close(r));
      }
    }

    test('gateway: the HTTP listener port is in use', () =>
      withBusyPort(async (port) => {
        const cfg = await gatewayConfig({ listeners: { http: { address: '127.0.0.1', port } } });
        const r = await run(['gateway', '--config', cfg.path]);
        assertExit(r, 1);
        assert.match(r.stderr, new RegExp(`^meshgate gateway: cannot listen on 127\\.0\\.0\\.1:${port}\\b.*EADDRINUSE`, 'm'), show(r));
        assert.doesNotMatch(r.stderr, /^\s+at /m);
        await Promise.all(cfg.ports.filter((p) => p !== port).map(assertNotListening));
      }));

    test('gateway: the admin port is in use', () =>
      withBusyPort(async (port) => {
        const cfg = await gatewayConfig({ admin: { address: '127.0.0.1', port } });
        const r = await run(['gateway', '--config', cfg.path]);
        assertExit(r, 1);
        assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}\\b.*admin.*EADDRINUSE`), show(r));
        // The HTTP listener, already bound by then, was closed again.
        await Promise.all(cfg.ports.filter((p) => p !== port).map(assertNotListening));
      }));

    test('proxy: the admin port is in use', () =>
      withBusyPort(async (port) => {
        const cfg = await proxyConfig({ admin: { address: '127.0.0.1', port } });
        const r = await run(['proxy', '--config', cfg.path]);
        assertExit(r, 1);
        assert.match(r.stderr, /^meshgate proxy: .*EADDRINUSE/m, show(r));
        assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}\\b`), show(r));
        // Inbound and outbound were bound before the admin listener failed: both were closed.
        await Promise.all(cfg.ports.filter((p) => p !== port).map(assertNotListening));
      }));
  });
});
