// Shared output for benchmarks: a printed table and a JSON file in bench-results/ (git-ignored).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { REPO_ROOT } from '../../cli/spawn-service.ts';

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function printTable(title: string, rows: Record<string, unknown>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const fmt = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  console.log(cols.map((c, i) => c.padStart(widths[i]!)).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => fmt(r[c]).padStart(widths[i]!)).join('  '));
}

export function writeResults(name: string, data: Record<string, unknown>): string {
  const dir = join(REPO_ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, at: new Date().toISOString(), node: process.version, cpus: cpus().length, ...data }, null, 2));
  console.log(`wrote ${file}`);
  return file;
}
