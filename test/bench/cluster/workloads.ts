// Workloads for the cluster simulation: the Azure LLM inference trace 2023 (conversation;
// ../shared/datasets/azure-llm-trace-2023, see its SOURCE.md: real arrivals and token counts),
// Poisson arrivals with the same length mix, and a shared-prefix workload.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../cli/spawn-service.ts';
import type { SimRequest } from './virtual-cluster.ts';
import type { Lane } from '../../../common/contracts.ts';
import { mulberry32 } from '../../sim/vllm/text.ts';

export const TRACE_FILE =
  process.env.AZURE_TRACE ?? join(REPO_ROOT, '../shared/datasets/azure-llm-trace-2023/AzureLLMInferenceTrace_conv.csv');

export interface TraceRow {
  atMs: number;
  prompt: number;
  output: number;
}

export function loadTrace(file = TRACE_FILE): TraceRow[] {
  if (!existsSync(file)) throw new Error(`trace not found: ${file} (set AZURE_TRACE)`);
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1);
  let t0 = NaN;
  return lines.map((l) => {
    const [ts, p, o] = l.split(',');
    const t = Date.parse(ts!.replace(' ', 'T').slice(0, 23) + 'Z');
    if (Number.isNaN(t0)) t0 = t;
    return { atMs: t - t0, prompt: Math.max(1, Number(p)), output: Math.max(1, Number(o)) };
  });
}

/** The simulator's seeded PRNG, so a workload replays exactly. */
export const rng = mulberry32;

const uniqueHashes = (id: number, tokens: number, block: number) =>
  Array.from({ length: Math.floor(tokens / block) }, (_, i) => `u${id}:${i}`);

function req(id: number, at: number, prompt: number, output: number, lane: Lane, tenant: string): SimRequest {
  // Trace prompts share no text we know of: unique block hashes (no prefix-cache hits).
  return {
    id,
    at,
    promptTokens: Math.min(prompt, 16_000),
    outputTokens: Math.min(output, 2_000),
    lane,
    tenant,
    engineHashes: uniqueHashes(id, prompt, 16),
    routerHashes: [],
  };
}

/** A window of the trace starting at `offset`, its arrivals scaled to `rate` requests/s on average. */
export function traceWorkload(
  rows: TraceRow[],
  count: number,
  rate: number,
  offset = 0,
  laneOf: (r: () => number) => Lane = () => 'standard',
  seed = 1,
): SimRequest[] {
  const win = rows.slice(offset, offset + count);
  const t0 = win[0]!.atMs;
  const span = win.at(-1)!.atMs - t0;
  const scale = ((count / rate) * 1000) / span;
  const rand = rng(seed);
  return win.map((r, i) => req(i, (r.atMs - t0) * scale, r.prompt, r.output, laneOf(rand), `t${Math.floor(rand() * 8)}`));
}

/** Poisson arrivals at `rate`/s, lengths drawn from the trace's own mix. */
export function poissonWorkload(rows: TraceRow[], count: number, rate: number, seed = 1): SimRequest[] {
  const rand = rng(seed);
  let t = 0;
  return Array.from({ length: count }, (_, i) => {
    t += (-Math.log(1 - rand()) / rate) * 1000;
    const r = rows[Math.floor(rand() * rows.length)]!;
    return req(i, t, r.prompt, r.output, 'standard', `t${i % 8}`);
  });
}

/** `groups` groups each sharing a `prefix`-token prefix, short unique suffixes; Poisson arrivals. */
export function sharedPrefixWorkload(
  count: number,
  rate: number,
  groups = 100,
  prefix = 4_096,
  suffix = 64,
  output = 64,
  seed = 1,
): SimRequest[] {
  const rand = rng(seed);
  let t = 0;
  return Array.from({ length: count }, (_, i) => {
    t += (-Math.log(1 - rand()) / rate) * 1000;
    const g = Math.floor(rand() * groups);
    const engineHashes = [
      ...Array.from({ length: prefix / 16 }, (_, b) => `g${g}:${b}`),
      ...uniqueHashes(i, suffix, 16).map((h) => `${h}s`),
    ];
    // The router hashes 256-character (~64-token) blocks, at most 64 of them.
    const routerHashes = Array.from({ length: Math.min(64, prefix / 64) }, (_, b) => `g${g}:r${b}`);
    return {
      id: i,
      at: t,
      promptTokens: prefix + suffix,
      outputTokens: output,
      lane: 'standard' as Lane,
      tenant: `g${g}`,
      engineHashes,
      routerHashes,
    };
  });
}
