// Runs every *.test.ts under test/ with node's test runner (Node 20's --test takes paths, not
// globs, so they are listed here). Files run two at a time: the suite must fit two shared cores.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return name === 'helpers' || name === 'fixtures' ? [] : find(p);
      return name.endsWith('.test.ts') ? [p] : [];
    })
    .sort();
}

const filter = process.argv.slice(2);
const files = find('test').filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Ports handed out by test/helpers/ports.ts are claimed here, so files running side by side never
// pick the same one.
const portDir = mkdtempSync(join(tmpdir(), 'meshgate-test-ports-'));
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=180000', ...files],
  { stdio: 'inherit', env: { ...process.env, MESHGATE_LOG_LEVEL: process.env.MESHGATE_LOG_LEVEL ?? 'warn', MESHGATE_TEST_PORT_DIR: portDir } },
);
rmSync(portDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
