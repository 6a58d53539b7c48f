// Reads the sample lines of a Prometheus text exposition (format 0.0.4): vLLM's and TGI's
// /metrics (node agent), the agent's own /metrics (control plane's capacity sampler).
//
// Why not `parse-prometheus-text-format` (1.1.1, the only maintained-looking JS parser on npm)?
// Tried on the real captures in test/fixtures/vllm it:
//  - drops `_sum` and `_count` of every LABELLED histogram (its flattening keeps them only for
//    label-less samples), and every vLLM histogram is labelled with model_name;
//  - merges the buckets of engine="0" and engine="1" into one series (labels are discarded);
//  - loses the last sample when the text has no trailing newline (the V0 capture has none).
// So this module reads sample lines itself (and the package is not a dependency); the grammar of
// a sample line is small:
//   name{label="value",...} value [timestamp]
// Never throws: lines it cannot read (the "..." lines of trimmed doc excerpts, garbage) are
// skipped; `*_created` families (prometheus_client's creation timestamps) are dropped.
import { setOwn } from './own.ts';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** Parse one sample line; null when it is not one. */
function parseSampleLine(line: string): Sample | null {
  const m = NAME_RE.exec(line);
  if (!m) return null;
  const name = m[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!lm) return null;
      i += lm[0].length;
      while (line[i] === ' ') i++;
      if (line[i] !== '=') return null;
      i++;
      while (line[i] === ' ') i++;
      if (line[i] !== '"') return null;
      i++;
      let v = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return null; // unterminated value
        if (c === '\\') {
          const n = line[i + 1];
          v += n === 'n' ? '\n' : (n ?? '');
          i += 2;
          continue;
        }
        if (c === '"') {
          i++;
          break;
        }
        v += c;
        i++;
      }
      // A label named `__proto__` from a scraped endpoint stays an ordinary label.
      setOwn(labels, lm[0], v);
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') return null;
  const value = parseValue(rest[0]!);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(s: string): number | null {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const n = Number(s);
  return Number.isNaN(n) ? null : n;
}

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  if (typeof text !== 'string') return out;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseSampleLine(line);
    if (s && !s.name.endsWith('_created')) out.push(s);
  }
  return out;
}
