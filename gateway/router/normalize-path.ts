// Dot segments are resolved before routing (RFC 3986 §5.2.4), so "/catalog/../admin" can neither
// slip past a route's prefix nor reach the upstream as a traversal.

/** Splits a request target into its normalized path and its query ("" or starting with "?"). */
export function splitTarget(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  return { path: needsNormalizing(rawPath) ? removeDotSegments(rawPath) : rawPath, query };
}

function needsNormalizing(path: string): boolean {
  return path.includes('/.') || path.includes('//') || (path.includes('%') && /\/%2e/i.test(path));
}

/** "." or ".." also when written with %2e (RFC 3986 §6.2.2.2; WHATWG URL does the same). */
function dotSegment(s: string): string {
  return s.length > 1 && s.length <= 6 && /^(?:\.|%2e){1,2}$/i.test(s) ? s.replace(/%2e/gi, '.') : s;
}

export function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = dotSegment(segments[i]);
    if (s === '..') out.pop();
    else if (s !== '.' && (s !== '' || i === segments.length - 1)) out.push(s);
  }
  const last = dotSegment(segments[segments.length - 1]);
  const trailing = last === '.' || last === '..';
  return `/${out.join('/')}${trailing && out.length > 0 ? '/' : ''}`;
}
