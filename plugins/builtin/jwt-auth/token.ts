// Finding the bearer token in a request (Authorization header, a cookie or a query parameter) and a
// shape check that turns away garbage before any parsing or crypto: a compact JWS is three
// base64url segments (RFC 7515 §7.1).
import type { RequestView } from '../../api.ts';

export type TokenSource = 'header' | { cookie: string } | { query: string };

export interface Found {
  readonly token: string;
  readonly fromHeader: boolean;
}

/** The first token among the sources, in order; undefined when there is none. */
export function findToken(ctx: RequestView, sources: readonly TokenSource[]): Found | undefined {
  for (const s of sources) {
    if (s === 'header') {
      const v = ctx.header('authorization');
      const t = v === undefined ? undefined : bearer(v);
      if (t !== undefined) return { token: t, fromHeader: true };
    } else if ('cookie' in s) {
      const v = ctx.header('cookie');
      const t = v === undefined ? undefined : cookieValue(v, s.cookie);
      if (t) return { token: t, fromHeader: false };
    } else {
      const t = queryValue(ctx.query, s.query);
      if (t) return { token: t, fromHeader: false };
    }
  }
  return undefined;
}

/** The credentials of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1). */
export function bearer(value: string): string | undefined {
  let i = 0;
  while (i < value.length && value.charCodeAt(i) === 32) i++;
  if (value.length - i < 7 || value.slice(i, i + 6).toLowerCase() !== 'bearer' || value.charCodeAt(i + 6) !== 32) return undefined;
  const t = value.slice(i + 7).trim();
  return t === '' ? undefined : t;
}

function cookieValue(header: string, name: string): string | undefined {
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    let i = start;
    while (i < end && header.charCodeAt(i) === 32) i++;
    if (header.startsWith(name, i) && header.charCodeAt(i + name.length) === 61 /* = */) return header.slice(i + name.length + 1, end).trim();
    start = end + 1;
  }
  return undefined;
}

function queryValue(query: string, name: string): string | undefined {
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (query.startsWith(name, start) && query.charCodeAt(start + name.length) === 61) {
      try {
        return decodeURIComponent(query.slice(start + name.length + 1, end));
      } catch {
        return undefined;
      }
    }
    start = end + 1;
  }
  return undefined;
}

/** True when `t` looks like a compact JWS: header.payload.signature, base64url characters only. */
export function looksCompact(t: string): boolean {
  let dots = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 46) {
      // Empty header or payload segments cannot be a JWT (the signature may not be empty either).
      if (++dots > 2 || i === 0 || t.charCodeAt(i - 1) === 46) return false;
    } else if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return false;
  }
  return dots === 2 && t.charCodeAt(t.length - 1) !== 46;
}
