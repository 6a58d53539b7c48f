// `icp capacity`: fetches the control plane's capacity report (GET /v1/capacity) and prints it
// for a capacity planner (or as JSON with --json). docs/capacity-planning.md explains the numbers.
import type { Config } from './config.ts';
import type { CapacityReport } from '../control-plane/capacity/report.ts';

export interface CapacityCliOptions {
  url?: string;
  window?: string;
  growth?: string;
  slo?: string;
  add?: string[];
  remove?: string[];
  json?: boolean;
}

export function controlPlaneBaseUrl(config: Config, url?: string): string {
  if (url) return url.replace(/\/+$/, '');
  if (config.controlPlaneUrl) return config.controlPlaneUrl.replace(/\/+$/, '');
  const { host, port } = config.controlPlane.listen;
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
}

const f = (x: number | undefined, d = 2) => (x === undefined ? '-' : String(Math.round(x * 10 ** d) / 10 ** d));

export function formatReport(r: CapacityReport): string {
  const out: string[] = [];
  out.push(
    `capacity report ${r.generatedAt}: window ${Math.round(r.params.windowMs / 60_000)} min (${r.params.source}), growth x${r.params.growth}, TTFT SLO ${r.params.sloTtftSeconds} s`,
  );
  for (const p of r.pools) {
    out.push('', `pool ${p.model} (${p.unit})`);
    out.push(`  demand            mean ${f(p.demand.mean)}  p95 ${f(p.demand.p95)}  peak ${f(p.demand.peak)}`);
    if (p.demand.inputTokensPerSecond)
      out.push(
        `  input tokens/s    mean ${f(p.demand.inputTokensPerSecond.mean, 0)}  p95 ${f(p.demand.inputTokensPerSecond.p95, 0)}  peak ${f(p.demand.inputTokensPerSecond.peak, 0)}`,
      );
    if (p.demand.outputTokensPerSecond)
      out.push(
        `  output tokens/s   mean ${f(p.demand.outputTokensPerSecond.mean, 0)}  p95 ${f(p.demand.outputTokensPerSecond.p95, 0)}  peak ${f(p.demand.outputTokensPerSecond.peak, 0)}`,
      );
    out.push(
      `  capacity          usable ${f(p.capacity.usable)}  nominal ${f(p.capacity.nominal)}  reference node ${f(p.referenceNodeCapacity)}`,
    );
    if (p.headroom) out.push(`  headroom          ${f(p.headroom.absolute)} (${f(p.headroom.ratio * 100, 0)}% of usable)`);
    if (p.nodesNeeded)
      out.push(
        `  nodes needed      ${p.nodesNeeded.forP95} for p95 x ${p.nodesNeeded.growth} (${f(p.nodesNeeded.exactForP95)} exact), ${p.nodesNeeded.forPeak} for peak; have ${p.nodesNeeded.have} (${f(p.nodesNeeded.haveEffective, 1)} reference nodes) -> add ${p.nodesNeeded.toAdd}`,
      );
    out.push('  nodes:');
    for (const n of p.nodes) {
      const st = [
        n.state.ready ? 'ready' : 'NOT READY',
        n.state.draining ? 'draining' : '',
        n.state.cordoned ? 'cordoned' : '',
        `gpu ${n.state.gpuVerdict}`,
      ]
        .filter(Boolean)
        .join(', ');
      out.push(
        `    ${n.node.padEnd(16)} ${n.kind.padEnd(18)} capacity ${f(n.capacity).padStart(7)} (${n.capacityBasis}${n.relativeCapacity !== undefined ? `, ${f(n.relativeCapacity * 100, 0)}% of ref` : ''})  ${st}${n.slow ? '  SLOW' : ''}`,
      );
    }
    if (p.costs.length) {
      out.push('  capacity lost:');
      for (const c of p.costs) out.push(`    ${c.node}: ${c.why.join('; ')} -> ${f(c.capacityLost)}`);
    }
    if (p.whatIf.length) {
      out.push('  what if:');
      for (const w of p.whatIf)
        out.push(
          `    ${w.change}: usable ${f(w.usable)}, headroom ${f(w.headroom)}${w.meetsP95TimesGrowth ? '' : '  (short of p95 x growth)'}`,
        );
    }
  }
  if (!r.pools.length) out.push('', 'no history yet');
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

export async function runCapacity(config: Config, opts: CapacityCliOptions): Promise<void> {
  const q = new URLSearchParams();
  if (opts.window) q.set('window', opts.window);
  if (opts.growth) q.set('growth', opts.growth);
  if (opts.slo) q.set('sloTtftSeconds', opts.slo);
  for (const a of opts.add ?? []) q.append('add', a);
  for (const r of opts.remove ?? []) q.append('remove', r);
  const url = `${controlPlaneBaseUrl(config, opts.url)}/v1/capacity?${q}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    console.error(`cannot reach the control plane at ${url}: ${(err as Error).message}`);
    process.exit(1);
  }
  const body = (await res.json()) as CapacityReport & { error?: { message: string } };
  if (!res.ok) {
    console.error(`control plane answered ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    process.exit(res.status === 400 ? 2 : 1);
  }
  console.log(opts.json ? JSON.stringify(body, null, 2) : formatReport(body));
}
