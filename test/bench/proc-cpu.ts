// Process CPU for benchmarks: utime+stime of a whole process (every thread: main, libuv pool, GC)
// from /proc/<pid>/stat, and the top self-time functions of a V8 .cpuprofile (node --cpu-prof).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of utime/stime (100 on every common Linux; asked once). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU time (user + system) the process has used so far, in microseconds. */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / clockTicks();
}

/** CPU of several named processes at one instant; absent names (no pid) are skipped. */
export function cpuSnapshot(pids: Map<string, number>): Map<string, number> {
  return new Map([...pids].map(([name, pid]) => [name, processCpuUs(pid)]));
}

/** CPU used by each process between two snapshots, in microseconds. */
export function cpuDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([name, us]) => [name, us - (before.get(name) ?? us)]));
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  function: string;
  self_ms: number;
  self_pct: number;
}

/**
 * The functions with the most self time in a .cpuprofile. A sample's time is the gap to the next
 * sample (timeDeltas[i + 1]), as DevTools counts it; without samples, hitCount times the mean interval.
 */
export function topSelfTime(file: string, n = 15): SelfTime[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    for (let i = 0; i < samples.length; i++) {
      const dt = i + 1 < deltas.length ? deltas[i + 1]! : 0;
      byNode.set(samples[i]!, (byNode.get(samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = profile.nodes.reduce((s, node) => s + (node.hitCount ?? 0), 0);
    const interval = hits > 0 ? (profile.endTime - profile.startTime) / hits : 0;
    for (const node of profile.nodes) byNode.set(node.id, (node.hitCount ?? 0) * interval);
  }
  // One row per function (a function appears under many call paths).
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const f = node.callFrame;
    const where = f.url
      ? `${f.url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\/.*?\/(?=(router|node-agent|common|cli)\/)/, '')}:${f.lineNumber + 1}`
      : '';
    const key = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + (byNode.get(node.id) ?? 0));
  }
  const total = [...byFunction.values()].reduce((a, b) => a + b, 0);
  return [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, us]) => ({ function: fn, self_ms: us / 1000, self_pct: total > 0 ? (100 * us) / total : 0 }));
}

/** The .cpuprofile files node wrote into a directory (one per process that ran with --cpu-prof). */
export function profilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}
