// Shared by the deployment tests: file loading, duration parsing, and the checks themselves.
// Each check returns a list of problems (empty = fine), so the tests can run it on the real
// files and on deliberately broken copies (a check that cannot fail proves nothing).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const rootPath = (p: string) => resolve(ROOT, p);
export const readText = (p: string) => readFileSync(rootPath(p), 'utf8');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are arbitrary YAML trees
export type Doc = any;

export function readYaml(p: string): Doc {
  return parseYaml(readText(p), { merge: true });
}

export function readYamlAll(p: string): Doc[] {
  return parseAllDocuments(readText(p), { merge: true })
    .map((d) => {
      if (d.errors.length) throw new Error(`${p}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS({ maxAliasCount: -1 }) as Doc;
    })
    .filter((d) => d != null);
}

export const clone = <T>(v: T): T => structuredClone(v);

/** Compose durations: "30m", "45s", "1m30s", "500ms", "1h". */
export function durationSeconds(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || !v) return NaN;
  let total = 0;
  let rest = v;
  const re = /^(\d+(?:\.\d+)?)(ms|us|h|m|s)/;
  while (rest.length) {
    const m = re.exec(rest);
    if (!m) return NaN;
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : m[2] === 'ms' ? n / 1000 : n / 1e6;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** An image reference with an explicit version tag (not latest, not missing). */
export function imageIsPinned(image: unknown): boolean {
  if (typeof image !== 'string') return false;
  if (image.includes('@sha256:')) return true;
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon <= slash) return false;
  const tag = image.slice(colon + 1);
  return tag !== 'latest' && /\d/.test(tag) && !tag.includes('${');
}

// ---------- PromQL: metric names referenced by an expression ----------

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'le',
]);

/** The metric names an expression selects (functions, keywords, labels, durations and strings excluded). */
export function promqlMetricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' '); // strings
  s = s.replace(/\{[^}]*\}/g, ' '); // label matchers
  s = s.replace(/\[[^\]]*\]/g, ' '); // ranges, subqueries
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // grouping labels
  const names = new Set<string>();
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const after = s.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // function or aggregation
    const before = s[m.index - 1];
    if (before && /[0-9.]/.test(before)) continue; // 1e-9 and the like
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Metric names documented in docs/metrics.md (first column of its tables). */
export function documentedMetrics(markdown: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|/.exec(line);
    if (m?.[1] && m[2]) names.set(m[1], m[2]);
  }
  return names;
}

/** Names neither documented nor Prometheus built-ins (`_bucket`/`_sum`/`_count` only on documented histograms). */
export function undocumentedMetrics(names: Iterable<string>, documented: Map<string, string>): string[] {
  const builtins = new Set(['up', 'time']);
  const out: string[] = [];
  for (const n of names) {
    if (builtins.has(n) || documented.has(n)) continue;
    const base = n.replace(/_(bucket|sum|count)$/, '');
    if (base !== n && documented.get(base) === 'histogram') continue;
    out.push(n);
  }
  return out;
}
