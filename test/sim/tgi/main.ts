// CLI: start one simulated TGI server. Same flags and the same one-line stdout contract as
// test/sim/vllm/main.ts ({"event":"listening",...}), plus TGI's own --max-input-tokens,
// --max-total-tokens, --max-concurrent-requests and the --tgi-version it reports.
import { parseArgs } from 'node:util';
import { startTgiSim } from './server.ts';

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
    // vLLM's name for the context length; kept so one set of flags drives either simulator
    'max-model-len': { type: 'string' },
    'max-input-tokens': { type: 'string' },
    'max-total-tokens': { type: 'string' },
    'max-concurrent-requests': { type: 'string' },
    'tgi-version': { type: 'string' },
    seed: { type: 'string' },
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

const maxTotal = num('max-total-tokens', values['max-total-tokens']) ?? num('max-model-len', values['max-model-len']);
const sim = await startTgiSim({
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
  maxTotalTokens: maxTotal,
  maxInputTokens: num('max-input-tokens', values['max-input-tokens']) ?? (maxTotal !== undefined ? maxTotal - 1 : undefined),
  maxConcurrentRequests: num('max-concurrent-requests', values['max-concurrent-requests']),
  version: values['tgi-version'],
  seed: num('seed', values.seed),
});
process.stdout.write(JSON.stringify({ event: 'listening', service: 'tgi-sim', url: sim.url }) + '\n');

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
