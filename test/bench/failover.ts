// Fallback benchmark. (1) Failover time: a closed loop of streaming-free chat requests runs
// against a one-node pool with an OpenAI-compatible provider simulator as fallback; the node's
// agent is SIGKILLed; we measure from the kill to the first answer served by the fallback (and
// count errors in between), per trial, then bring the node back. (2) The Anthropic translation's
// cost per streamed chunk: parse + translate + serialise the captured event stream, in process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, waitFor, modelOwner, DEFAULT_MODEL } from '../helpers/stack.ts';
import { AnthropicStreamTranslator } from '../../router/upstream/providers/anthropic-translate.ts';
import { REPO_ROOT } from '../../cli/spawn-service.ts';
import { percentile, printTable, writeResults } from './report.ts';

const TRIALS = Number(process.env.FAILOVER_TRIALS ?? 8);
const CONCURRENCY = 4;
const KEY = 'sk-bench-openai-5e0c';

async function failover() {
  const stack = await startStack({
    sims: [{ id: 'sim-a' }],
    agents: [{ id: 'gpu-a', sim: 'sim-a' }],
    providerSims: [{ id: 'openai-sim', apiKey: KEY }],
    routerEnv: { BENCH_OPENAI_KEY: KEY },
    router: ({ providerSims }) => ({
      fallback: {
        providers: { openai: { kind: 'openai', baseUrl: `${providerSims.get('openai-sim')!.url}/v1`, apiKeyEnv: 'BENCH_OPENAI_KEY' } },
        chains: { [DEFAULT_MODEL]: ['local', 'openai:gpt-4o-mini'] },
      },
    }),
  });
  const results: { failoverMs: number; errors: number }[] = [];
  try {
    for (let t = 0; t < TRIALS; t++) {
      await waitFor(async () => (await modelOwner(stack.routerUrl, DEFAULT_MODEL)) === 'gpu-pool', 30_000);
      let killedAt = 0;
      let servedAt = 0;
      let errors = 0;
      let stop = false;
      const worker = async () => {
        while (!stop) {
          const started = performance.now();
          try {
            const r = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
            });
            await r.text();
            const now = performance.now();
            if (!r.ok) {
              if (killedAt) errors++;
            } else if (killedAt && started >= killedAt && r.headers.get('x-backend')?.startsWith('openai:') && !servedAt) {
              servedAt = now;
              stop = true;
            }
          } catch {
            if (killedAt) errors++;
          }
        }
      };
      const workers = Array.from({ length: CONCURRENCY }, worker);
      await new Promise((r) => setTimeout(r, 300));
      killedAt = performance.now();
      stack.agents.get('gpu-a')!.kill('SIGKILL');
      const guard = setTimeout(() => (stop = true), 20_000);
      await Promise.all(workers);
      clearTimeout(guard);
      results.push({ failoverMs: servedAt ? servedAt - killedAt : NaN, errors });
      await stack.agents.get('gpu-a')!.exited;
      await stack.startAgent('gpu-a');
    }
  } finally {
    await stack.stop();
  }
  const ms = results.map((r) => r.failoverMs).filter(Number.isFinite);
  return {
    trials: results,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: Math.max(...ms),
    errorsTotal: results.reduce((a, r) => a + r.errors, 0),
  };
}

function translation() {
  const sse = ['messages-stream-text.claude-sonnet-4-5.sse', 'messages-stream-server-tool-search-then-tool-use.sse'].map((f) =>
    readFileSync(join(REPO_ROOT, 'test/fixtures/anthropic', f), 'utf8'),
  );
  const payloads = sse.flatMap((s) =>
    s
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6)),
  );
  const rounds = 20_000;
  let chunks = 0;
  // Warm up, then time: parse the event, translate it, and the chunk strings it yields.
  for (let i = 0; i < 2_000; i++) {
    const t = new AnthropicStreamTranslator('m');
    for (const p of payloads) t.push(JSON.parse(p) as Record<string, unknown>);
  }
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const t = new AnthropicStreamTranslator('m');
    for (const p of payloads) chunks += t.push(JSON.parse(p) as Record<string, unknown>).length;
  }
  const ns = Number(process.hrtime.bigint() - start);
  // Baseline: what relaying an OpenAI chunk costs the router anyway (one JSON.parse per chunk).
  const openai = readFileSync(join(REPO_ROOT, 'test/fixtures/openai/chat-stream-tool-call-include-usage.gpt-4o-mini.sse'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => l.slice(6));
  const s2 = process.hrtime.bigint();
  let n2 = 0;
  for (let i = 0; i < rounds; i++)
    for (const p of openai) {
      JSON.parse(p);
      n2++;
    }
  const ns2 = Number(process.hrtime.bigint() - s2);
  return {
    eventsPerRound: payloads.length,
    chunksOut: chunks / rounds,
    usPerEvent: ns / (rounds * payloads.length) / 1000,
    usPerChunkOut: ns / chunks / 1000,
    openaiRelayUsPerChunk: ns2 / n2 / 1000,
  };
}

const tr = translation();
const fo = await failover();
printTable('Failover: last GPU node SIGKILLed -> first answer from the OpenAI-compatible fallback', [
  {
    trials: fo.trials.length,
    p50_ms: fo.p50.toFixed(0),
    p99_ms: fo.p99.toFixed(0),
    max_ms: fo.max.toFixed(0),
    client_errors_during_failover: fo.errorsTotal,
  },
]);
printTable('Anthropic translation (in process, captured events)', [
  {
    us_per_event_in: tr.usPerEvent.toFixed(2),
    us_per_chunk_out: tr.usPerChunkOut.toFixed(2),
    openai_relay_parse_us_per_chunk: tr.openaiRelayUsPerChunk.toFixed(2),
  },
]);
writeResults('failover', { failover: fo, translation: tr });
