import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DURATION_PATTERN, parseDuration } from '../../config/duration.ts';
import { initCa, issueLeaf, loadCa } from '../../mesh-proxy/identity/ca.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../lifecycle.ts';

export const CA_HELP = `Usage: meshgate ca init --dir DIR [--trust-domain DOMAIN] [--intermediate] [--force]
       meshgate ca issue --dir DIR --service NAME [--namespace NS] [--ttl 24h] [--out DIR]

meshgate's own certificate authority for mTLS between proxies.

  init    creates a root CA (and with --intermediate an intermediate CA that signs leaves) in DIR;
          private keys are written with mode 0600. Refuses to overwrite an existing CA without --force.
  issue   issues a short-lived leaf certificate for a service, with the SPIFFE identity
          spiffe://<trust-domain>/ns/<namespace>/sa/<service> as its URI SAN, usable as TLS server
          and client certificate. Writes <service>.pem (leaf + chain), <service>.key (0600) and
          ca.pem (the root, the trust anchor peers need) to --out (default: the current directory).

Options:
  --dir DIR            the CA directory
  --trust-domain D     the SPIFFE trust domain (init; default cluster.local)
  --intermediate       also create an intermediate CA (init)
  --service NAME       the workload's service name (issue)
  --namespace NS       its namespace (issue; default "default")
  --ttl DURATION       leaf lifetime (issue; default 24h)
  --out DIR            where issue writes its files
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
    return usage(`unknown subcommand "${sub}" (init or issue)`);
  } catch (err) {
    process.stderr.write(`meshgate ca ${sub}: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
