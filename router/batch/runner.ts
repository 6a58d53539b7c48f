// The batch worker in every router replica: claims items of running jobs (a lease each, see
// store.ts), runs each through the router's own request path in the sheddable lane, and writes
// its line. Sheddable requests are admitted only while a node has a free batch slot, so a refusal
// means "the pool is busy": the job yields for `yieldMs` without counting an attempt, and
// interactive traffic keeps the slots. Retryable failures back off exponentially with jitter and
// go to the dead-letter list after `maxAttempts`; 4xx answers (bad model, insufficient_quota) go
// to the error file at once. The worker also ends jobs (completed, expired, cancelled), writes
// their output and error files, and delivers the completion webhook.
import { isRefusalCode } from '../admission/refusal.ts';
import type { Logger } from '../../common/logger.ts';
import { backoffMs } from '../upstream/retry.ts';
import type { BatchConfig } from './config.ts';
import { errorLine, responseLine } from './lines.ts';
import type { BatchStore } from './store.ts';
import { TERMINAL, type BatchRecord, type BatchStatus, type Claim, type ItemSpec, type StoredFile } from './types.ts';
import { deliver, eventFor } from './webhook.ts';

export interface ItemResult {
  status: number;
  body: unknown;
  requestId: string;
  retryAfterSeconds?: number;
}
/** Runs one item as `keyId` through the router's own request path. */
export type ItemExecutor = (item: ItemSpec, keyId: string | null) => Promise<ItemResult>;

export type ItemOutcome = 'succeeded' | 'failed' | 'retried' | 'yielded' | 'dead_lettered' | 'expired' | 'lease_lost';
export interface BatchObserver {
  item?(outcome: ItemOutcome, n?: number): void;
  job?(status: BatchStatus): void;
  webhook?(result: 'delivered' | 'retried' | 'failed'): void;
}

type Verdict = 'ok' | 'yield' | 'permanent' | 'retryable';

export function classify(r: ItemResult): Verdict {
  if (r.status >= 200 && r.status < 300) return 'ok';
  const code = (r.body as { error?: { code?: unknown } } | undefined)?.error?.code;
  // The lane's refusal (429 lane_shed, or a queue's 503 lane_*): busy, not broken.
  if (isRefusalCode(code)) return 'yield';
  if (code === 'insufficient_quota') return 'permanent';
  if (r.status === 0 || r.status === 408 || r.status === 429 || r.status >= 500) return 'retryable';
  return 'permanent';
}

export class BatchRunner {
  private readonly inflight = new Map<string, number>();
  private total = 0;
  private readonly pausedUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly store: BatchStore,
    private readonly cfg: BatchConfig,
    private readonly exec: ItemExecutor,
    private readonly logger: Logger,
    private readonly owner: string,
    private readonly webhookSecret: string | undefined,
    private readonly observer: BatchObserver = {},
    /** False until the router can serve items as their keys (policy and membership synced). */
    private readonly canRun: () => boolean = () => true,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.cfg.pollMs);
    this.timer.unref();
  }

  /** Stops claiming; items in flight finish (their leases expire if they do not in time). */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => (t = setTimeout(r, graceMs)))]);
    clearTimeout(t);
  }

  async tick(): Promise<void> {
    if (this.ticking || this.closed || !this.canRun()) return;
    this.ticking = true;
    try {
      for (const id of await this.store.activeBatches()) {
        try {
          await this.step(id);
        } catch (err) {
          this.logger.warn({ batch: id, err: (err as Error).message }, 'batch step failed');
        }
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'batch store unavailable');
    } finally {
      this.ticking = false;
    }
  }

  private async step(id: string): Promise<void> {
    const b = await this.store.getBatch(id);
    if (!b) return this.store.setActive(id, false);
    const now = Date.now();
    if (b.status === 'in_progress') {
      if (now >= b.expiresAtMs) return this.expire(b);
      const counts = await this.store.counts(id);
      const mine = this.inflight.get(id) ?? 0;
      // Every unfinished item, leased ones included, is in the set: empty means all lines written.
      if (counts.pending === 0) return this.finalize(b, 'completed');
      if ((this.pausedUntil.get(id) ?? 0) > now) return;
      const room = Math.min(this.cfg.concurrencyPerJob - mine, this.cfg.maxConcurrent - this.total);
      if (room <= 0) return;
      const claims = await this.store.claim(id, room, now, this.cfg.leaseMs, this.owner);
      if (!claims.length) return;
      // One item at a time from disk (item-file.ts), not the whole input.
      for (const c of claims) this.launch(b, (await this.store.getItem(id, c.index)) ?? missingItem(c.index), c);
    } else if (b.status === 'cancelling') {
      // Items still running anywhere lose their leases: their answers are dropped.
      await this.store.dropRemaining(id);
      await this.finalize(b, 'cancelled');
    } else if (TERMINAL.has(b.status)) {
      await this.announce(b);
    }
  }

  private launch(b: BatchRecord, item: ItemSpec, claim: Claim): void {
    this.inflight.set(b.id, (this.inflight.get(b.id) ?? 0) + 1);
    this.total += 1;
    // A long item keeps its lease; a crashed router's leases run out and another takes the item.
    const renew = setInterval(
      () => void this.store.renew(b.id, claim, Date.now() + this.cfg.leaseMs).catch(() => undefined),
      Math.max(50, this.cfg.leaseMs / 3),
    );
    renew.unref();
    const p = this.runItem(b, item, claim)
      .catch((err: Error) =>
        this.logger.warn({ batch: b.id, item: item.index, err: err.message }, 'batch item not settled; its lease will expire'),
      )
      .finally(() => {
        clearInterval(renew);
        this.inflight.set(b.id, (this.inflight.get(b.id) ?? 1) - 1);
        this.total -= 1;
        this.running.delete(p);
        // A slot just freed: look for the next item now rather than at the next poll.
        setImmediate(() => void this.tick());
      });
    this.running.add(p);
  }

  private async runItem(b: BatchRecord, item: ItemSpec, claim: Claim): Promise<void> {
    let r: ItemResult;
    try {
      r = await this.exec(item, b.keyId);
    } catch (err) {
      r = {
        status: 0,
        body: { error: { message: (err as Error).message, type: 'server_error', param: null, code: 'internal_error' } },
        requestId: '',
      };
    }
    const verdict = classify(r);
    const now = Date.now();
    let ok: boolean;
    let outcome: ItemOutcome;
    if (verdict === 'ok') {
      ok = await this.store.finish(b.id, claim, 'output', responseLine(item, r.status, r.requestId, r.body));
      outcome = 'succeeded';
    } else if (verdict === 'permanent') {
      ok = await this.store.finish(b.id, claim, 'errors', responseLine(item, r.status, r.requestId, r.body));
      outcome = 'failed';
    } else if (verdict === 'yield') {
      const until = now + Math.max(this.cfg.yieldMs, Math.min(5_000, (r.retryAfterSeconds ?? 0) * 1_000));
      this.pausedUntil.set(b.id, Math.max(this.pausedUntil.get(b.id) ?? 0, until));
      ok = await this.store.retry(b.id, claim, until, false);
      outcome = 'yielded';
    } else {
      const attempts = claim.attempts + 1;
      if (attempts >= this.cfg.maxAttempts) {
        const e = (r.body as { error?: { code?: string | null; message?: string } } | undefined)?.error;
        ok = await this.store.deadLetter(b.id, claim, responseLine(item, r.status, r.requestId, r.body), {
          index: item.index,
          custom_id: item.custom_id,
          attempts,
          status_code: r.status || null,
          error: { code: e?.code ?? null, message: e?.message ?? `HTTP ${r.status}` },
          failed_at: Math.floor(now / 1000),
        });
        outcome = 'dead_lettered';
      } else {
        const wait = Math.max(
          backoffMs(attempts, { baseDelayMs: this.cfg.retryBaseMs, maxDelayMs: this.cfg.retryMaxMs }),
          (r.retryAfterSeconds ?? 0) * 1_000,
        );
        ok = await this.store.retry(b.id, claim, now + wait, true);
        outcome = 'retried';
      }
    }
    this.observer.item?.(ok ? outcome : 'lease_lost');
  }

  private async expire(b: BatchRecord): Promise<void> {
    const n = await this.store.closeRemaining(b.id, async (i) =>
      errorLine(
        (await this.store.getItem(b.id, i)) ?? missingItem(i),
        'batch_expired',
        'This request could not be executed before the completion window expired.',
      ),
    );
    if (n) this.observer.item?.('expired', n);
    await this.finalize(b, 'expired');
  }

  /** Writes the output and error files and the job's final state; once, across replicas. */
  private async finalize(seen: BatchRecord, to: BatchStatus): Promise<void> {
    const lock = `finalize:${seen.id}`;
    if (!(await this.store.lock(lock, 30_000, this.owner))) return;
    try {
      const b = await this.store.getBatch(seen.id);
      if (!b || b.status !== seen.status) return;
      const now = Date.now();
      const sec = Math.floor(now / 1000);
      const [output, errs] = await Promise.all([this.store.results(b.id, 'output'), this.store.results(b.id, 'errors')]);
      b.finalizing_at = sec;
      // Stable ids: a finalize redone after a crash (or after a requeue) rewrites the same files.
      const suffix = b.id.slice('batch_'.length);
      b.output_file_id = output.size ? await this.putResultFile(b, `file-out-${suffix}`, output) : null;
      b.error_file_id = errs.size ? await this.putResultFile(b, `file-err-${suffix}`, errs) : null;
      b.request_counts = { total: b.request_counts.total, completed: output.size, failed: errs.size };
      b.usage = usageOf(output);
      b.status = to;
      if (to === 'completed') b.completed_at = sec;
      if (to === 'expired') b.expired_at = sec;
      if (to === 'cancelled') b.cancelled_at = sec;
      if (this.cfg.webhook.url) b.webhook = { state: 'pending', attempts: 0, nextAt: now, eventId: `evt_${suffix}_${now}` };
      await this.store.putBatch(b);
      this.observer.job?.(to);
      this.pausedUntil.delete(b.id);
      // Done: its item state and offsets leave memory (a requeue reads them back).
      this.store.release(b.id);
      if (!this.cfg.webhook.url) await this.store.setActive(b.id, false);
      else await this.announce(b);
    } finally {
      await this.store.unlock(lock, this.owner);
    }
  }

  private async putResultFile(b: BatchRecord, id: string, lines: Map<number, string>): Promise<string> {
    const sorted = [...lines.keys()].sort((x, y) => x - y);
    // Streamed to disk line by line, never one string.
    const bytes = await this.store.blobs.writeLines(
      id,
      (function* () {
        for (const i of sorted) yield lines.get(i)!;
      })(),
    );
    const createdAt = Math.floor(Date.now() / 1000);
    const file: StoredFile = {
      id,
      object: 'file',
      bytes,
      created_at: createdAt,
      filename: `${b.id}_${id.startsWith('file-out') ? 'output' : 'error'}.jsonl`,
      purpose: 'batch_output',
      status: 'processed',
      expires_at: createdAt + (b.outputExpiresAfterSeconds ?? this.cfg.outputExpiresAfterSeconds),
      tenant: b.tenant,
    };
    await this.store.putFile(file);
    return id;
  }

  /** The completion webhook, retried with backoff; the job leaves the active set once it is done. */
  private async announce(seen: BatchRecord): Promise<void> {
    const w = seen.webhook;
    if (!w || w.state !== 'pending' || !this.cfg.webhook.url) return this.store.setActive(seen.id, false);
    if (w.nextAt > Date.now()) return;
    const lock = `webhook:${seen.id}`;
    if (!(await this.store.lock(lock, this.cfg.webhook.timeoutMs + 5_000, this.owner))) return;
    try {
      const b = await this.store.getBatch(seen.id);
      if (!b?.webhook || b.webhook.state !== 'pending' || b.webhook.nextAt > Date.now()) return;
      const event = eventFor(b.webhook.eventId, b.id, b.status, b.finalizing_at ?? Math.floor(Date.now() / 1000));
      const delivered = await deliver(this.cfg.webhook.url, this.webhookSecret, event, this.cfg.webhook.timeoutMs, this.cfg.webhook);
      b.webhook.attempts += 1;
      if (delivered) b.webhook.state = 'delivered';
      else if (b.webhook.attempts >= this.cfg.webhook.maxAttempts) b.webhook.state = 'failed';
      else
        b.webhook.nextAt =
          Date.now() +
          backoffMs(b.webhook.attempts, { baseDelayMs: this.cfg.webhook.baseDelayMs, maxDelayMs: this.cfg.webhook.baseDelayMs * 64 }) +
          this.cfg.webhook.baseDelayMs / 2;
      this.observer.webhook?.(delivered ? 'delivered' : b.webhook.state === 'failed' ? 'failed' : 'retried');
      if (!delivered && b.webhook.state === 'failed')
        this.logger.warn({ batch: b.id, attempts: b.webhook.attempts }, 'batch webhook not delivered; giving up');
      await this.store.putBatch(b);
      if (b.webhook.state !== 'pending') await this.store.setActive(b.id, false);
    } finally {
      await this.store.unlock(lock, this.owner);
    }
  }
}

function usageOf(output: Map<number, string>): NonNullable<BatchRecord['usage']> {
  let input = 0;
  let out = 0;
  for (const line of output.values()) {
    const u = (JSON.parse(line) as { response?: { body?: { usage?: { prompt_tokens?: number; completion_tokens?: number } } } }).response
      ?.body?.usage;
    input += u?.prompt_tokens ?? 0;
    out += u?.completion_tokens ?? 0;
  }
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: out,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + out,
  };
}

/** An item whose line could not be read back (its items file is gone): still gets its line. */
function missingItem(index: number): ItemSpec {
  return { index, custom_id: `item-${index}`, method: 'POST', url: '', body: {} };
}
