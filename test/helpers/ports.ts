import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** Ports this process has handed out: never handed out twice. */
const handedOut = new Set<number>();

/**
 * Claims `port` for this test run. test/run.js gives the run a directory (MESHGATE_TEST_PORT_DIR);
 * a port is claimed by creating its file there exclusively, so two test files running side by side
 * never get the same port while one of them has picked it and not yet bound it (a gateway process
 * starting takes a second). Without the directory (one file run directly) only this process counts.
 */
function claim(port: number): boolean {
  if (handedOut.has(port)) return false;
  const dir = process.env.MESHGATE_TEST_PORT_DIR;
  if (dir !== undefined) {
    try {
      closeSync(openSync(join(dir, String(port)), 'wx'));
    } catch {
      return false;
    }
  }
  handedOut.add(port);
  return true;
}

/**
 * A TCP port that was free on 127.0.0.1 a moment ago, picked at random below Linux's ephemeral range
 * (32768-60999): a port the OS hands out for listen(0) comes from that range, where the outgoing
 * connections of every test running alongside also take their source ports, so it may be taken
 * again before the test binds it. Claimed for the run (see claim()). Bounded attempts.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (claim(port) && (await canBind(port))) return port;
  }
  throw new Error('no free port found in 20000-31999 after 100 attempts');
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
}
