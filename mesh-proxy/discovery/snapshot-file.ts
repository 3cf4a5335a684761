// The last known good endpoints on disk, so a proxy restarted while the store is down still routes.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isInstance, type Instance } from '../store/types.ts';

export interface EndpointSnapshot {
  savedAt: number;
  instances: Instance[];
}

export async function writeSnapshot(file: string, snapshot: EndpointSnapshot): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ version: 1, ...snapshot }), { mode: 0o600 });
  await rename(tmp, file); // atomic: a reader never sees half a file
}

export async function readSnapshot(file: string): Promise<EndpointSnapshot | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { version?: number; savedAt?: unknown; instances?: unknown };
    if (v.version !== 1 || typeof v.savedAt !== 'number' || !Array.isArray(v.instances)) return undefined;
    return { savedAt: v.savedAt, instances: v.instances.filter(isInstance) };
  } catch {
    return undefined;
  }
}
