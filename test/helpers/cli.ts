// Starts meshgate the way a user does (`node bin/meshgate.js <command> --config FILE`) and stops it
// with a signal, collecting its output for assertions and for failure messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { waitFor } from './ports.ts';

export const BIN = resolve(import.meta.dirname, '../../bin/meshgate.js');

export function tempDir(prefix = 'meshgate-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a config object (or raw YAML text) to a file in `dir` and returns its path. */
export function writeConfig(dir: string, name: string, config: object | string): string {
  const file = join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (for commands that should exit, e.g. on a bad config). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export class MeshgateProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly #exit: Promise<RunResult>;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d) => (this.stdout += d));
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.#exit = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }));
    });
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits until GET adminUrl/ready answers 200. */
  async ready(adminUrl: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(`${adminUrl}/ready`, async () => {
      if (this.exited) throw new Error(`process exited: ${this.stderr || this.stdout}`);
      const res = await fetch(`${adminUrl}/ready`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    }, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\nstdout:\n${this.stdout.slice(-2000)}\nstderr:\n${this.stderr.slice(-2000)}`);
    });
  }

  /** Parsed JSON log lines printed so far. */
  logs(): Array<Record<string, unknown>> {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  }

  /** Sends `signal` and waits for the exit (SIGKILL after timeoutMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<RunResult> {
    if (!this.exited) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.#exit;
    clearTimeout(timer);
    return r;
  }

  wait(): Promise<RunResult> {
    return this.#exit;
  }
}
