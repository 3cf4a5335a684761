import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DURATION_PATTERN, parseDuration } from '../../config/duration.ts';
import { initCa, issueLeaf, loadCa } from '../../mesh-proxy/identity/ca.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, reportStartupError, runUntilSignal } from '../lifecycle.ts';
import { MAX_TTL_MS, startSignServer } from '../../mesh-proxy/identity/sign-server.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';

export const CA_HELP = `Usage: meshgate ca init --dir DIR [--trust-domain DOMAIN] [--intermediate] [--force]
       meshgate ca issue --dir DIR --service NAME [--namespace NS] [--ttl 24h] [--out DIR]
       meshgate ca serve --dir DIR --token TOKEN [--address 127.0.0.1] [--port 9443] [--max-ttl 168h]

meshgate's own certificate authority for mTLS between proxies.

  init    creates a root CA (and with --intermediate an intermediate CA that signs leaves) in DIR;
          private keys are written with mode 0600. Refuses to overwrite an existing CA without --force.
  issue   issues a short-lived leaf certificate for a service, with the SPIFFE identity
          spiffe://<trust-domain>/ns/<namespace>/sa/<service> as its URI SAN, usable as TLS server
          and client certificate. Writes <service>.pem (leaf + chain), <service>.key (0600) and
          ca.pem (the root, the trust anchor peers need) to --out (default: the current directory).
  serve   runs the signing endpoint proxies use (mesh.signer): HTTPS, POST /v1/sign with
          "Authorization: Bearer TOKEN" and JSON {csr, service, namespace, ttl}; answers
          {certChain, root, identity, serial, notAfter}. Lifetimes are capped by --max-ttl.

Options:
  --dir DIR            the CA directory
  --trust-domain D     the SPIFFE trust domain (init; default cluster.local)
  --intermediate       also create an intermediate CA (init)
  --service NAME       the workload's service name (issue)
  --namespace NS       its namespace (issue; default "default")
  --ttl DURATION       leaf lifetime (issue; default 24h)
  --out DIR            where issue writes its files
  --token TOKEN        bootstrap token (serve; ≥ 16 characters; or MESHGATE_BOOTSTRAP_TOKEN)
  --address ADDR       address to bind (serve; default 127.0.0.1)
  --port PORT          port (serve; default 9443)
  --max-ttl DURATION   longest lifetime issued (serve; default and at most 168h)
  -h, --help           show this help`;

export async function caCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string' },
      'trust-domain': { type: 'string', default: 'cluster.local' },
      intermediate: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      service: { type: 'string' },
      namespace: { type: 'string', default: 'default' },
      ttl: { type: 'string', default: '24h' },
      out: { type: 'string', default: '.' },
      token: { type: 'string' },
      address: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9443' },
      'max-ttl': { type: 'string', default: '168h' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${CA_HELP}\n`);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const usage = (msg: string) => {
    process.stderr.write(`meshgate ca ${sub}: ${msg}\n\n${CA_HELP}\n`);
    return EXIT_USAGE;
  };
  if (!values.dir) return usage('--dir DIR is required');
  try {
    if (sub === 'init') {
      if (!values.force && (await exists(join(values.dir, 'root.key')))) return usage(`a CA already exists in ${values.dir} (use --force to replace it)`);
      const ca = await initCa(values.dir, values['trust-domain']!, values.intermediate!);
      process.stdout.write(`created a ${values.intermediate ? 'root and intermediate' : 'root'} CA for trust domain ${ca.trustDomain} in ${values.dir}\n`);
      return EXIT_OK;
    }
    if (sub === 'issue') {
      if (!values.service) return usage('--service NAME is required');
      if (!new RegExp(DURATION_PATTERN).test(values.ttl!)) return usage(`--ttl must be a duration such as 1h or 24h (got "${values.ttl}")`);
      const ca = await loadCa(values.dir);
      const leaf = issueLeaf(ca, { service: values.service, namespace: values.namespace!, ttlMs: parseDuration(values.ttl!) });
      await mkdir(values.out!, { recursive: true });
      await writeFile(join(values.out!, `${values.service}.pem`), leaf.certChainPem);
      await writeFile(join(values.out!, `${values.service}.key`), leaf.keyPem, { mode: 0o600 });
      await writeFile(join(values.out!, 'ca.pem'), ca.rootCert);
      process.stdout.write(`${JSON.stringify({ identity: leaf.identity, serial: leaf.serial, notAfter: leaf.notAfter.toISOString() })}\n`);
      return EXIT_OK;
    }
    if (sub === 'serve') return await serve(values);
    return usage(`unknown subcommand "${sub}" (init, issue or serve)`);
  } catch (err) {
    process.stderr.write(`meshgate ca ${sub}: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
}

async function serve(values: { dir?: string; token?: string; address?: string; port?: string; 'max-ttl'?: string }): Promise<number> {
  const usage = (msg: string) => {
    process.stderr.write(`meshgate ca serve: ${msg}\n\n${CA_HELP}\n`);
    return EXIT_USAGE;
  };
  const token = values.token ?? process.env.MESHGATE_BOOTSTRAP_TOKEN;
  if (!token || token.length < 16) return usage('a bootstrap token of at least 16 characters is required (--token or MESHGATE_BOOTSTRAP_TOKEN)');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return usage(`--port must be a TCP port (got "${values.port}")`);
  if (!new RegExp(DURATION_PATTERN).test(values['max-ttl']!)) return usage(`--max-ttl must be a duration such as 24h (got "${values['max-ttl']}")`);
  const maxTtlMs = Math.min(parseDuration(values['max-ttl']!), MAX_TTL_MS);
  const ca = await loadCa(values.dir!);
  const log = createLogger({ level: (process.env.MESHGATE_LOG_LEVEL as 'info' | undefined) ?? 'info' }, { component: 'ca' });
  let server;
  try {
    server = await startSignServer({ ca, token, address: values.address!, port, log, maxTtlMs });
  } catch (err) {
    return reportStartupError('ca serve', err);
  }
  process.stdout.write(`meshgate ca serve: signing for trust domain ${ca.trustDomain} on https://${server.address.address}:${server.address.port}/v1/sign\n`);
  return runUntilSignal('ca serve', () => server.close());
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
