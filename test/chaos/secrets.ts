// The chaos run's secrets-and-prompts check: every API key, admin token and provider credential
// a scenario uses is registered here, every line a process wrote (stack.logs) and every metrics
// scrape is added, and at the end no line may contain any of them, nor the marker string the load
// generator puts in every prompt. One audit for the whole run (module singleton), so the runner
// and chaos.test.ts see what every scenario saw.
import type { Stack } from '../helpers/stack.ts';

/** Put in every prompt the chaos load sends: a process that logs prompt text shows it. */
export const PROMPT_MARKER = 'chaos-prompt-marker-5e1f0c9a';

export interface LeakHit {
  /** What leaked: the secret's label (never its value) or `prompt marker`. */
  what: string;
  /** Where: the source given to addLines (a scenario and process name). */
  source: string;
  /** The offending line with the secret replaced, so the report itself does not leak it. */
  line: string;
}

export interface AuditSummary {
  secrets: number;
  linesScanned: number;
  hits: LeakHit[];
  /** Sources whose log buffer was full, so older lines were lost before the check saw them. */
  truncated: string[];
}

export class LeakAudit {
  private readonly secrets = new Map<string, string>(); // value -> label
  private readonly lines: { source: string; line: string }[] = [];
  private readonly truncated = new Set<string>();

  constructor(private readonly marker = PROMPT_MARKER) {}

  /** Registers a credential (short values would match by chance: at least 8 characters). */
  addSecret(label: string, value: string): void {
    if (value.length < 8) throw new Error(`secret ${label} is too short to grep for`);
    this.secrets.set(value, label);
  }

  addLines(source: string, lines: Iterable<string>): void {
    for (const line of lines) this.lines.push({ source, line });
  }

  /** A source whose buffer overflowed: the check is incomplete, and says so. */
  markTruncated(source: string): void {
    this.truncated.add(source);
  }

  check(): AuditSummary {
    const hits: LeakHit[] = [];
    const needles: [string, string][] = [...this.secrets].map(([value, label]) => [value, label]);
    needles.push([this.marker, 'prompt marker']);
    for (const { source, line } of this.lines) {
      for (const [value, label] of needles) {
        if (line.includes(value)) hits.push({ what: label, source, line: redact(line, needles) });
      }
    }
    return { secrets: this.secrets.size, linesScanned: this.lines.length, hits, truncated: [...this.truncated] };
  }

  reset(): void {
    this.secrets.clear();
    this.lines.length = 0;
    this.truncated.clear();
  }
}

function redact(line: string, needles: [string, string][]): string {
  let out = line;
  for (const [value, label] of needles) out = out.split(value).join(`<${label}>`);
  return out.length > 400 ? `${out.slice(0, 400)}…` : out;
}

/** The audit of the whole chaos run. */
export const chaosAudit = new LeakAudit();

/**
 * Adds a stack's output and the metrics every process exposes to the audit. Call it before
 * stack.stop() (stop removes nothing from `logs`, but the scrapes need the processes). The stack
 * should be started with a large `maxLogLines`; a full buffer is reported as truncated.
 */
export async function auditStack(scenario: string, stack: Stack, maxLogLines: number, audit = chaosAudit): Promise<void> {
  if (stack.logs.length >= maxLogLines) audit.markTruncated(`${scenario} logs`);
  audit.addLines(`${scenario} logs`, stack.logs);
  const scrape = async (name: string, url: string | undefined) => {
    if (!url) return;
    try {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
      if (res.ok) audit.addLines(`${scenario} ${name} /metrics`, (await res.text()).split('\n'));
    } catch {
      // a process the scenario killed has no metrics to leak
    }
  };
  await Promise.all([scrape('router', stack.routerUrl), scrape('control-plane', stack.controlPlane?.url)]);
}
