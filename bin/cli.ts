import { caCommand, CA_HELP } from './commands/ca.ts';
import { demoCommand, DEMO_HELP } from './commands/demo.ts';
import { gatewayCommand, GATEWAY_HELP } from './commands/gateway.ts';
import { keyCommand, KEY_HELP } from './commands/key.ts';
import { proxyCommand, PROXY_HELP } from './commands/proxy.ts';
import { statusCommand, STATUS_HELP } from './commands/status.ts';
import { splitCommand, SPLIT_HELP } from './commands/split.ts';
import { explainCommand, EXPLAIN_HELP } from './commands/explain.ts';
import { EXIT_OK, EXIT_USAGE } from './lifecycle.ts';

const HELP = `Usage: meshgate <command> [options]

An API gateway and service-mesh data plane for Node.js.

Commands:
  gateway --config FILE   run an edge gateway
  proxy --config FILE     run a sidecar mesh proxy beside a service instance
  demo                    run the local demo: gateway, catalog (x2) and orders, each behind a sidecar
  ca init|issue           meshgate's certificate authority: create it, issue workload certificates
  key hash|new            API keys for the api-key plugin: hash a key, make a new one
  split set|show|clear    traffic splits: weights across subsets, canary matches, mirroring
  status                  what a running gateway or sidecar knows: endpoints, health, splits, failover
  explain [METHOD] URL    what a running gateway would do with a request, and why
  help [COMMAND]          show help for a command

Run 'meshgate <command> --help' for a command's options.`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  gateway: { run: gatewayCommand, help: GATEWAY_HELP },
  proxy: { run: proxyCommand, help: PROXY_HELP },
  demo: { run: demoCommand, help: DEMO_HELP },
  ca: { run: caCommand, help: CA_HELP },
  key: { run: keyCommand, help: KEY_HELP },
  split: { run: splitCommand, help: SPLIT_HELP },
  status: { run: statusCommand, help: STATUS_HELP },
  explain: { run: explainCommand, help: EXPLAIN_HELP },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const sub = name === 'help' && rest[0] ? COMMANDS[rest[0]] : undefined;
    process.stdout.write(`${sub ? sub.help : HELP}\n`);
    return EXIT_OK;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`meshgate: unknown command "${name}"\n\n${HELP}\n`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    // parseArgs rejects unknown options and missing values: a usage error, not a crash.
    if ((err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`meshgate ${name}: ${(err as Error).message}\n\n${cmd.help}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}
