import pino from 'pino';
import type { LogConfig } from '../../config/schema.ts';

export type Logger = pino.Logger;

/**
 * JSON logs on stdout. Writes are buffered and asynchronous (sonic-boom) so the access log costs
 * the request path a serialization, not a syscall; `flush()` runs on shutdown.
 */
export function createLogger(cfg: Pick<LogConfig, 'level'>, base: Record<string, string>): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino({ level: cfg.level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
