/** A Host header's name part, lower-case, without the port ("[::1]:80" → "[::1]"). */
export function hostWithoutPort(host: string): string {
  if (host.charCodeAt(0) === 91 /* '[' */) {
    const end = host.indexOf(']');
    return (end === -1 ? host : host.slice(0, end + 1)).toLowerCase();
  }
  const colon = host.indexOf(':');
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
}

/** "http://catalog:80/items?x" → { host: "catalog:80", path: "/items?x" }; undefined if not absolute-form. */
export function splitAbsoluteForm(target: string): { host: string; path: string } | undefined {
  try {
    const u = new URL(target);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return { host: u.host, path: (u.pathname || '/') + u.search };
  } catch {
    return undefined;
  }
}
