// Cost of shadow traffic to the users: the same closed loop of requests through router + agents +
// simulated engines to an alias without shadowing (0%) and to one mirrored at 50% to another
// model on its own node, with the router's embedder computing the similarity of every pair. Phases
// alternate (0, 50, 0 again as an A/A control; twice) so drift on a shared machine hits both alike. Reports the users' p50/p99
// latency (non-streaming, end to end) and TTFT (streaming) per share, and what the shadows did.
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { percentile, printTable, writeResults } from './report.ts';

const REQUESTS = Number(process.env.SHADOW_REQUESTS ?? 300);
const CONCURRENCY = Number(process.env.SHADOW_CONCURRENCY ?? 8);
const SHADOW_MODEL = 'sim-shadow';
const SIM_ARGS = ['--max-num-seqs', '64', '--decode-step-ms', '4', '--decode-step-ms-per-seq', '0'];
const ADMIN_TOKEN = `bench-${Math.random().toString(36).slice(2)}`;

async function main() {
  process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
  const stack = await startStack({
    sims: [
      { id: 'p', args: SIM_ARGS },
      { id: 's', model: SHADOW_MODEL, args: SIM_ARGS },
    ],
    agents: [
      { id: 'gpu-p', sim: 'p' },
      { id: 'gpu-s', sim: 's' },
    ],
    maxLogLines: 100,
    router: {
      aliases: { plain: DEFAULT_MODEL, shadowed: DEFAULT_MODEL },
      embeddings: {
        models: [
          {
            id: 'glove-100d-embed',
            kind: 'embedding',
            path: 'models/glove-100d-embed/model.onnx',
            tokenizer: 'models/glove-100d-embed/tokenizer.json',
            output: 'sentence_embedding',
            maxLength: 256,
            workers: 1,
          },
        ],
      },
      shadow: {
        rules: [{ alias: 'shadowed', target: `local:${SHADOW_MODEL}`, percent: 50, maxConcurrent: 16, dailyTokenBudget: 100_000_000 }],
      },
    },
  });
  try {
    await waitFor(async () => {
      const m = await listModels(stack.routerUrl);
      return m.includes(DEFAULT_MODEL) && m.includes(SHADOW_MODEL);
    }, 60_000);
    let errors = 0;
    const one = async (model: string, stream: boolean): Promise<number> => {
      const started = performance.now();
      const r = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Describe the sea in one sentence.' }], max_tokens: 24, stream }),
      });
      if (!stream) {
        await r.text();
        if (!r.ok) errors++;
        return performance.now() - started;
      }
      const reader = r.body!.getReader();
      const first = await reader.read();
      const ttft = performance.now() - started;
      while (!first.done && !(await reader.read()).done) {
        /* drain */
      }
      return ttft;
    };
    const loop = async (model: string, n: number, stream: boolean) => {
      const out: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < n) {
            next++;
            out.push(await one(model, stream));
          }
        }),
      );
      return out;
    };
    await loop('plain', 60, false); // warm-up (connections, JIT, embedder)
    await loop('shadowed', 60, false);
    // '0% (A/A)' repeats the 0% phase: the spread between the two 0% rows is this machine's noise.
    type Share = '0%' | '50%' | '0% (A/A)';
    const res: Record<Share, { e2e: number[]; ttft: number[] }> = {
      '0%': { e2e: [], ttft: [] },
      '50%': { e2e: [], ttft: [] },
      '0% (A/A)': { e2e: [], ttft: [] },
    };
    for (let round = 0; round < 2; round++) {
      for (const [share, model] of [
        ['0%', 'plain'],
        ['50%', 'shadowed'],
        ['0% (A/A)', 'plain'],
      ] as const) {
        res[share].e2e.push(...(await loop(model, REQUESTS / 2, false)));
        res[share].ttft.push(...(await loop(model, REQUESTS / 2, true)));
      }
    }
    // What the shadows did (router metrics) and what reached the control plane.
    await new Promise((r) => setTimeout(r, 2_000));
    const metrics = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const outcomes: Record<string, number> = {};
    for (const m of metrics.matchAll(/^router_shadow_requests_total\{[^}]*outcome="([^"]+)"\} (\d+)$/gm)) outcomes[m[1]!] = Number(m[2]);
    const summary = (await (
      await fetch(`${stack.controlPlane!.url}/v1/admin/shadow/summary`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).json()) as { data: { count: number; meanSimilarity: number | null; shadow: { latencyMs: { p50: number | null } } }[] };

    const rows = (['0%', '0% (A/A)', '50%'] as const).map((share) => ({
      shadowing: share,
      requests: res[share].e2e.length,
      'e2e p50 ms': percentile(res[share].e2e, 50),
      'e2e p99 ms': percentile(res[share].e2e, 99),
      'ttft p50 ms': percentile(res[share].ttft, 50),
      'ttft p99 ms': percentile(res[share].ttft, 99),
    }));
    printTable(
      `Shadow traffic: users' latency, ${CONCURRENCY} concurrent, shadow to a second simulated node, similarity by the router embedder`,
      rows,
    );
    const row = summary.data[0];
    console.log(
      `shadows by outcome: ${JSON.stringify(outcomes)}; recorded at the control plane: ${row?.count ?? 0}, mean similarity ${row?.meanSimilarity ?? 'n/a'}; user errors: ${errors}`,
    );
    const p99 = (s: Share) => percentile([...res[s].e2e], 99);
    console.log(
      `e2e p99 with 50% shadowing / without: ${(p99('50%') / p99('0%')).toFixed(2)}x (A/A: ${(p99('0% (A/A)') / p99('0%')).toFixed(2)}x)`,
    );
    writeResults('shadow', {
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      rows,
      shadowOutcomes: outcomes,
      recorded: row?.count ?? 0,
      meanSimilarity: row?.meanSimilarity ?? null,
      userErrors: errors,
    });
  } finally {
    await stack.stop();
  }
}

await main();
