// Entry point for every service: `start` (the whole embedded stack), `router`, `node-agent`,
// `control-plane`. Each reads the same YAML config file.
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.ts';
import { agentInputs, controlPlaneInputs, DEFAULT_CONFIG_PATH, loadConfig, routerInputs, type Config } from './config.ts';

const USAGE = `usage: icp <command> [--config FILE]

commands:
  start            the whole stack on this machine (simulated engines from the config's simulators:)
  router           the OpenAI-compatible router
  node-agent       one node agent (--id ID picks it from the config's agents:, optional when there is one)
  control-plane    the node registry and watch API
  credentials      generate | node-token --id ID | hash-token: mint credentials (docs/security.md)
  capacity         print the control plane's capacity report (--url URL, --window 1h, --growth 1.5,
                   --slo SECONDS, --add N[:kind], --remove N[:kind], --json)

--config FILE      YAML config (default: $ICP_CONFIG or config/local.yaml)`;

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      id: { type: 'string' },
      'secret-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      // capacity
      url: { type: 'string' },
      window: { type: 'string' },
      growth: { type: 'string' },
      slo: { type: 'string' },
      add: { type: 'string', multiple: true },
      remove: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    process.exit(command || values.help ? 0 : 2);
  }
  if (command === 'credentials') {
    const { runCredentials } = await import('./credentials.ts');
    return runCredentials(positionals.slice(1), values);
  }
  const file = values.config ?? process.env.ICP_CONFIG ?? DEFAULT_CONFIG_PATH;
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  switch (command) {
    case 'start': {
      const { runSupervisor } = await import('./supervisor.ts');
      return runSupervisor(config, file);
    }
    case 'router': {
      const { runRouter } = await import('../router/main.ts');
      return runRouter(routerInputs(config));
    }
    case 'control-plane': {
      const { runControlPlane } = await import('../control-plane/main.ts');
      return runControlPlane(controlPlaneInputs(config));
    }
    case 'capacity': {
      const { runCapacity } = await import('./capacity.ts');
      return runCapacity(config, values);
    }
    case 'node-agent': {
      const agents = config.agents;
      const agent = values.id ? agents.find((a) => a.id === values.id) : agents.length === 1 ? agents[0] : undefined;
      if (!agent) {
        console.error(
          values.id
            ? `no agent with id '${values.id}' in ${file} (have: ${agents.map((a) => a.id).join(', ') || 'none'})`
            : `${file} has ${agents.length} agents: pick one with --id`,
        );
        process.exit(2);
      }
      const { runAgent } = await import('../node-agent/main.ts');
      return runAgent(agentInputs(config, agent), agent);
    }
    default:
      console.error(`unknown command '${command}'\n\n${USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
