// How a meshgate process lives and ends: SIGTERM/SIGINT drain and exit 0; a second signal exits at
// once; a startup failure is one clear line on stderr and a non-zero exit.
import { ConfigError } from '../config/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Runs until SIGTERM or SIGINT, then stops; a second signal exits at once. A cluster worker
 * (`asWorker`) drains on SIGTERM and ignores SIGINT and repeated SIGTERMs: Ctrl-C and systemd reach
 * the whole process group, and the primary both asks each worker to drain and escalates if needed.
 */
export async function runUntilSignal(name: string, stop: () => Promise<void>, asWorker = false): Promise<number> {
  if (asWorker) process.on('SIGINT', () => {});
  const signals: NodeJS.Signals[] = asWorker ? ['SIGTERM'] : ['SIGTERM', 'SIGINT'];
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        if (asWorker) return;
        process.stderr.write(`meshgate ${name}: ${signal} again, exiting now\n`);
        process.exit(EXIT_FAILURE);
      }
      stopping = true;
      stop().then(
        () => resolve(EXIT_OK),
        (err: Error) => {
          process.stderr.write(`meshgate ${name}: error while stopping: ${err.message}\n`);
          resolve(EXIT_FAILURE);
        },
      );
    };
    for (const s of signals) process.on(s, onSignal);
  });
}

/** One line for the operator: config problems already name the file and path. */
export function reportStartupError(name: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`meshgate ${name}: invalid configuration: ${err.message}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`meshgate ${name}: ${(err as Error).message ?? err}\n`);
  return EXIT_FAILURE;
}
