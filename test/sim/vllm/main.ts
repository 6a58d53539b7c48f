// CLI: start one simulated vLLM server. Prints exactly one JSON line on stdout once listening,
// so a parent process can read the URL; SIGTERM/SIGINT close it cleanly (exit 0).
import { parseArgs } from 'node:util';
import { startVllmSim } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    model: { type: 'string', default: 'sim-model' },
    speed: { type: 'string' },
    'max-num-seqs': { type: 'string' },
    'kv-cache-tokens': { type: 'string' },
    'load-time-ms': { type: 'string' },
    'decode-step-ms': { type: 'string' },
    'decode-step-ms-per-seq': { type: 'string' },
    'prefill-ms-per-token': { type: 'string' },
    'max-model-len': { type: 'string' },
    seed: { type: 'string' },
    'metrics-naming': { type: 'string', default: 'current' },
  },
  strict: true,
});

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    console.error(`--${name}: not a number: ${v}`);
    process.exit(2);
  }
  return n;
}

const naming = values['metrics-naming'];
if (naming !== 'current' && naming !== 'legacy') {
  console.error(`--metrics-naming must be current or legacy, got ${naming}`);
  process.exit(2);
}

const sim = await startVllmSim({
  host: values.host,
  port: num('port', values.port),
  model: values.model,
  speed: num('speed', values.speed),
  maxNumSeqs: num('max-num-seqs', values['max-num-seqs']),
  kvCacheTokens: num('kv-cache-tokens', values['kv-cache-tokens']),
  loadTimeMs: num('load-time-ms', values['load-time-ms']),
  decodeStepMs: num('decode-step-ms', values['decode-step-ms']),
  decodeStepMsPerSeq: num('decode-step-ms-per-seq', values['decode-step-ms-per-seq']),
  prefillMsPerToken: num('prefill-ms-per-token', values['prefill-ms-per-token']),
  maxModelLen: num('max-model-len', values['max-model-len']),
  seed: num('seed', values.seed),
  metricsNaming: naming,
});
process.stdout.write(JSON.stringify({ event: 'listening', service: 'vllm-sim', url: sim.url }) + '\n');

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  sim.close().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
