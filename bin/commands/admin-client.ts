// The CLI's way into a running gateway or sidecar: its admin API, with the bearer token when one is
// configured. Errors name the URL and what went wrong, for the command to print and exit 1.
import { request } from 'undici';

export class AdminError extends Error {
  readonly code = 'ADMIN_FAILED';
  /** The admin API's status when it answered (0: it could not be reached). */
  readonly status: number;
  /** Its error code when it answered with meshgate's JSON error. */
  readonly errorCode: string | undefined;
  /** Its error message alone (the message names the URL too). */
  readonly detail: string | undefined;

  constructor(message: string, status = 0, errorCode?: string, detail?: string) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.detail = detail;
  }
}

/** The options every command that asks a running proxy's admin API takes (parseArgs form). */
export const ADMIN_OPTIONS = {
  admin: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface AdminTarget {
  readonly base: string;
  readonly token: string | undefined;
}

export function adminTarget(admin: string | undefined, token: string | undefined): AdminTarget {
  const base = (admin ?? process.env.MESHGATE_ADMIN_URL ?? 'http://127.0.0.1:9901').replace(/\/+$/, '');
  return { base, token: token ?? process.env.MESHGATE_ADMIN_TOKEN };
}

/**
 * One admin call with a JSON answer: GET, or POST with `body`, or the method given. `undefined` for a
 * 404 (no such view, or no such split); an AdminError for anything else that is not a success.
 */
export async function adminJson<T>(t: AdminTarget, path: string, body?: unknown, method?: 'PUT' | 'DELETE'): Promise<T | undefined> {
  const url = `${t.base}${path}`;
  let res;
  try {
    res = await request(url, {
      method: method ?? (body === undefined ? 'GET' : 'POST'),
      headers: { ...(t.token ? { authorization: `Bearer ${t.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
  } catch (err) {
    throw new AdminError(`cannot reach the admin API at ${t.base} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is the gateway or sidecar running? (--admin URL)`);
  }
  const text = await res.body.text();
  if (res.statusCode === 404) return undefined;
  if (res.statusCode === 401) throw new AdminError(`the admin API at ${t.base} needs a token (--token or MESHGATE_ADMIN_TOKEN)`, 401);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new AdminError(`${url} answered ${res.statusCode} with a body that is not JSON`, res.statusCode);
  }
  if (res.statusCode >= 400) {
    const e = (doc as { error?: { code?: string; message?: string } }).error;
    throw new AdminError(`${url} answered ${res.statusCode}${e ? ` ${e.code}: ${e.message}` : ''}`, res.statusCode, e?.code, e?.message);
  }
  return doc as T;
}

/** Runs a CLI command's admin calls: an AdminError is printed as `meshgate NAME: …` with exit 1. */
export async function withAdmin(name: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    process.stderr.write(`meshgate ${name}: ${err.message}\n`);
    return 1;
  }
}

/** Left-aligned columns, two spaces apart. */
export function table(rows: readonly string[][], indent = '  '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
