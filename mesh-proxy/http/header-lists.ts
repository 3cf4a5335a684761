// Header and trailer lists as the proxy handles them: flat [name, value, …] lists on the way
// through, objects where Node's HTTP/2 API wants them.

export function valueOf(headers: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].length === lowerName.length && headers[i].toLowerCase() === lowerName) return headers[i + 1];
  return undefined;
}

export function addHeader(out: Record<string, string | string[] | number>, name: string, value: string): void {
  const prev = out[name];
  if (prev === undefined) out[name] = value;
  else out[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
}

/** Trailers as an object of lower-case names, from an HTTP/1.1 raw list or an HTTP/2 trailers object. */
export function trailerObject(trailers: string[] | Record<string, string | string[] | undefined>): Record<string, string | string[]> | undefined {
  // "No trailers" is an empty list on every HTTP/1.1 response: nothing to allocate.
  if (Array.isArray(trailers) && trailers.length === 0) return undefined;
  const out: Record<string, string | string[]> = {};
  let any = false;
  if (Array.isArray(trailers)) {
    for (let i = 0; i < trailers.length; i += 2) {
      addHeader(out as Record<string, string | string[] | number>, trailers[i].toLowerCase(), trailers[i + 1]);
      any = true;
    }
  } else {
    for (const name in trailers) {
      const v = trailers[name];
      if (v === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
      out[name] = v;
      any = true;
    }
  }
  return any ? out : undefined;
}
