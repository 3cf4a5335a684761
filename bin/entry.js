// Loads a meshgate module from the compiled build (dist/, made by `npm run build`, which `npm install`
// runs) when that build is at least as new as every source file; otherwise from the TypeScript
// sources through tsx, so an edited source is never shadowed by a stale build. Compiled code starts
// faster and runs without tsx's loader thread (tens of MB of resident memory).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['bin', 'config', 'gateway', 'mesh-proxy', 'plugins', 'loadtest/servers'];

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export function buildIsFresh() {
  if (process.env.MESHGATE_FROM_SOURCE === '1') return false;
  let stamp;
  try {
    stamp = statSync(join(ROOT, 'dist', '.stamp')).mtimeMs;
  } catch {
    return false;
  }
  return SOURCE_DIRS.every((d) => newestSource(join(ROOT, d)) <= stamp);
}

/** Imports `rel` ("bin/cli") from dist/ when the build is fresh, else from its .ts source. */
export async function load(rel) {
  if (buildIsFresh()) return import(pathToFileURL(join(ROOT, 'dist', `${rel}.js`)).href);
  const { register } = await import('tsx/esm/api');
  register();
  return import(pathToFileURL(join(ROOT, `${rel}.ts`)).href);
}
