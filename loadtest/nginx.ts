// nginx as the harness runs it: one process (no master), one worker, in its own directory, with
// `http` block contents supplied by the caller (a proxy peer, or the static upstream).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPinned, type Pinned } from './proc.ts';

export function startNginx(core: number, dir: string, httpBlock: string, ready: () => Promise<boolean>): Promise<Pinned> {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${httpBlock}
}
`,
  );
  return startPinned(core, 'nginx', ['-c', conf, '-p', dir], { ready });
}
