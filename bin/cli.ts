// Each command's module is imported only when it runs: a sidecar (`meshgate proxy`) should not
// hold the CA's node-forge, the gateway or the CLI clients in memory.
import './v8-tuning.ts';
import { limitOldGeneration } from './old-generation.ts';
import { capYoungGeneration, GATEWAY_SEMI_SPACE_MB, SIDECAR_SEMI_SPACE_MB } from './young-generation.ts';
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

type Command = { run: (argv: string[]) => Promise<number>; help: string };

const COMMANDS: Record<string, () => Promise<Command>> = {
  gateway: async () => { const m = await import('./commands/gateway.ts'); return { run: m.gatewayCommand, help: m.GATEWAY_HELP }; },
  proxy: async () => { const m = await import('./commands/proxy.ts'); return { run: m.proxyCommand, help: m.PROXY_HELP }; },
  demo: async () => { const m = await import('./commands/demo.ts'); return { run: m.demoCommand, help: m.DEMO_HELP }; },
  ca: async () => { const m = await import('./commands/ca.ts'); return { run: m.caCommand, help: m.CA_HELP }; },
  key: async () => { const m = await import('./commands/key.ts'); return { run: m.keyCommand, help: m.KEY_HELP }; },
  split: async () => { const m = await import('./commands/split.ts'); return { run: m.splitCommand, help: m.SPLIT_HELP }; },
  status: async () => { const m = await import('./commands/status.ts'); return { run: m.statusCommand, help: m.STATUS_HELP }; },
  explain: async () => { const m = await import('./commands/explain.ts'); return { run: m.explainCommand, help: m.EXPLAIN_HELP }; },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const sub = name === 'help' && rest[0] && Object.hasOwn(COMMANDS, rest[0]) ? await COMMANDS[rest[0]]() : undefined;
    process.stdout.write(`${sub ? sub.help : HELP}\n`);
    return EXIT_OK;
  }
  // Before the command's modules load: V8 grows the young generation while they compile.
  if (name === 'proxy') {
    capYoungGeneration(SIDECAR_SEMI_SPACE_MB);
    limitOldGeneration('sidecar');
  } else if (name === 'gateway' || name === 'demo') {
    // The demo runs its gateways and sidecars in this one process.
    capYoungGeneration(GATEWAY_SEMI_SPACE_MB);
    limitOldGeneration('gateway');
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? await COMMANDS[name]() : undefined;
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
