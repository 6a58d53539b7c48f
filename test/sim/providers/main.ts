// CLI: one simulated hosted-provider server (OpenAI, Azure OpenAI and Anthropic routes). The key
// it accepts comes from the environment variable named by --api-key-env (never an argument, so
// it does not show in process listings). Prints the one "listening" JSON line.
import { parseArgs } from 'node:util';
import { announceListening, onShutdown } from '../../../common/process.ts';
import { createLogger } from '../../../common/logger.ts';
import { startProviderSim } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'api-key-env': { type: 'string', default: 'SIM_PROVIDER_API_KEY' },
    'chunk-delay-ms': { type: 'string', default: '2' },
  },
  strict: true,
});
const apiKey = process.env[values['api-key-env']];
if (!apiKey) {
  console.error(`set ${values['api-key-env']} to the key the simulator should accept`);
  process.exit(2);
}
const sim = await startProviderSim({
  port: Number(values.port),
  host: values.host,
  apiKey,
  chunkDelayMs: Number(values['chunk-delay-ms']),
});
announceListening('provider-sim', sim.url);
onShutdown(createLogger('provider-sim'), () => sim.close());
