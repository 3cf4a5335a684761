import pino from 'pino';
import type { LogConfig } from '../../config/schema.ts';

export type Logger = pino.Logger;

/**
 * JSON logs on stdout. Writes are asynchronous (sonic-boom): lines written while a write is in
 * flight are coalesced into the next one, so under load the access log costs the request path a
 * serialization rather than a syscall, while at low traffic a line still appears at once (a
 * minimum buffer length would hold a lone warning back). `flush()` runs on shutdown.
 */
export function createLogger(cfg: Pick<LogConfig, 'level'>, base: Record<string, string>): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 0 });
  return pino({ level: cfg.level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
