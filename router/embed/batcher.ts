// Dynamic batching for one model: texts from concurrent requests run together in one worker message.
// Policy: a lone request (nothing queued or running) goes to a free worker at once, paying no window.
// Otherwise submissions made in the same event-loop turn are coalesced (the pump runs on
// setImmediate, a few microseconds later), e.g. all the clients a finished batch released. A free
// worker takes the queue at once when nothing else is running; while another batch is running it waits up to `windowMs` for more,
// or until its share of `maxBatch` is queued. When several workers are free, the queue is split
// evenly between them. The queue is bounded: beyond `maxQueue` waiting items a request is refused
// whole (the route answers 429). Tokenizing, length grouping and padding happen in the worker.
import type { InferenceWorker } from './inference-worker-handle.ts';
import type { ItemFailure, RunInput } from './worker-protocol.ts';

export class QueueFullError extends Error {
  constructor(
    readonly queued: number,
    readonly maxQueue: number,
  ) {
    super(`queue full (${queued} sequences waiting, limit ${maxQueue})`);
  }
}

/** An item of a request the worker could not run; the lowest failed index of the request. */
export class ItemError extends Error {
  constructor(
    readonly index: number,
    readonly failure: ItemFailure,
  ) {
    super(failure.message);
  }
}

/** One sequence to run: a text (embedding) or a (query, passage) pair (rerank). Prefixes applied. */
export interface WorkItem {
  text: string;
  query?: string;
  /** Embedding: cut an over-long text instead of failing it. */
  truncate?: boolean;
}

export interface SubmitResult {
  /** One output row per item, in order. */
  rows: Float32Array[];
  /** Tokens run, special tokens included. */
  tokens: number;
}

interface Request {
  rows: Float32Array[];
  tokens: number;
  remaining: number;
  failed: { index: number; failure: ItemFailure } | null;
  done: boolean;
  resolve(r: SubmitResult): void;
  reject(err: Error): void;
}

interface Item {
  work: WorkItem;
  req: Request;
  index: number;
  enqueuedAt: number;
}

export interface BatcherOptions {
  windowMs: number;
  maxBatch: number;
  maxQueue: number;
}

export interface BatcherStats {
  /** Worker messages. */
  batches: number;
  /** onnxruntime calls (a batch is split into length groups). */
  groups: number;
  sequences: number;
  paddedTokens: number;
  realTokens: number;
  tokenizeMs: number;
  runMs: number;
}

export class Batcher {
  private queue: Item[] = [];
  private readonly idle: InferenceWorker[];
  private inFlight = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private closed = false;
  readonly stats: BatcherStats = { batches: 0, groups: 0, sequences: 0, paddedTokens: 0, realTokens: 0, tokenizeMs: 0, runMs: 0 };

  constructor(
    private readonly workers: InferenceWorker[],
    private readonly opts: BatcherOptions,
  ) {
    this.idle = [...workers];
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Rejects with ItemError (the lowest failed index) when an item cannot run, e.g. too long. */
  submit(items: WorkItem[]): Promise<SubmitResult> {
    if (this.closed) return Promise.reject(new Error('model is closed'));
    if (items.length === 0) return Promise.resolve({ rows: [], tokens: 0 });
    // An empty queue always admits, so one request larger than maxQueue is still served.
    if (this.queue.length > 0 && this.queue.length + items.length > this.opts.maxQueue) {
      return Promise.reject(new QueueFullError(this.queue.length, this.opts.maxQueue));
    }
    return new Promise((resolve, reject) => {
      const req: Request = {
        rows: new Array(items.length),
        tokens: 0,
        remaining: items.length,
        failed: null,
        done: false,
        resolve,
        reject,
      };
      const now = performance.now();
      const wasEmpty = this.queue.length === 0;
      items.forEach((work, index) => this.queue.push({ work, req, index, enqueuedAt: now }));
      // A lone request (nothing queued, running or about to be pumped) goes to a worker right away.
      if (wasEmpty && this.inFlight === 0 && this.immediate === null && this.idle.length > 0) this.pump();
      else this.schedulePump();
    });
  }

  /** Coalesces the submissions of one event-loop turn (e.g. every client a finished batch released). */
  private schedulePump(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = null;
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const waited = performance.now() - this.queue[0]!.enqueuedAt;
      const share = Math.ceil(this.opts.maxBatch / this.workers.length);
      const ready = this.inFlight === 0 || this.queue.length >= share || waited >= this.opts.windowMs;
      if (!ready) {
        this.timer ??= setTimeout(
          () => {
            this.timer = null;
            this.pump();
          },
          Math.max(0, this.opts.windowMs - waited),
        );
        return;
      }
      const take = Math.min(this.opts.maxBatch, Math.ceil(this.queue.length / this.idle.length));
      this.dispatch(this.idle.pop()!, this.queue.splice(0, take));
    }
  }

  private dispatch(worker: InferenceWorker, items: Item[]): void {
    this.inFlight++;
    const input = toRunInput(items);
    const released = new Set(items.map((it) => it.req)).size;
    worker
      .run(input)
      .then(
        (out) => {
          this.stats.batches++;
          this.stats.groups += out.groups;
          this.stats.sequences += items.length;
          this.stats.paddedTokens += out.paddedTokens;
          this.stats.tokenizeMs += out.tokenizeMs;
          this.stats.runMs += out.runMs;
          const tokens = new Int32Array(out.tokens);
          const failed = new Map(out.failures.map((f) => [f.index, f]));
          const data = new Float32Array(out.data);
          items.forEach((it, i) => {
            const f = failed.get(i);
            if (f) this.failItem(it, f);
            else {
              this.stats.realTokens += tokens[i]!;
              this.deliver(it, data.subarray(i * out.cols, (i + 1) * out.cols), tokens[i]!);
            }
          });
        },
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          for (const it of items) this.fail(it.req, e);
        },
      )
      .finally(() => {
        this.inFlight--;
        if (worker.alive) this.idle.push(worker);
        else if (this.idle.length === 0 && this.inFlight === 0) this.failAll(new Error('all inference workers are gone'));
        // Several released requests resubmit in this turn: pump once they have, so they batch together.
        if (this.queue.length > 0 || released > 1) this.schedulePump();
      });
  }

  private deliver(it: Item, row: Float32Array, tokens: number): void {
    const req = it.req;
    if (req.done) return;
    req.rows[it.index] = row;
    req.tokens += tokens;
    this.settleOne(req);
  }

  /** Waits for the request's other items, so the error names its lowest failed index. */
  private failItem(it: Item, failure: ItemFailure): void {
    const req = it.req;
    if (req.done) return;
    if (!req.failed || it.index < req.failed.index) req.failed = { index: it.index, failure };
    this.settleOne(req);
  }

  private settleOne(req: Request): void {
    if (--req.remaining > 0) return;
    req.done = true;
    if (req.failed) req.reject(new ItemError(req.failed.index, req.failed.failure));
    else req.resolve({ rows: req.rows, tokens: req.tokens });
  }

  private fail(req: Request, err: Error): void {
    if (req.done) return;
    req.done = true;
    req.reject(err);
  }

  private failAll(err: Error): void {
    const q = this.queue;
    this.queue = [];
    for (const it of q) this.fail(it.req, err);
  }

  /** Refuses new work, fails what is still queued, closes the workers once in-flight batches end. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.failAll(new Error('model is closing'));
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** Flattens a batch into the worker message: texts, truncate flags, distinct queries. */
export function toRunInput(items: { work: WorkItem }[]): RunInput {
  const texts = items.map((it) => it.work.text);
  if (items.some((it) => it.work.query !== undefined)) {
    const queries: string[] = [];
    const seen = new Map<string, number>();
    const queryIndex = new Int32Array(items.length);
    items.forEach((it, i) => {
      const q = it.work.query ?? '';
      let k = seen.get(q);
      if (k === undefined) {
        k = queries.push(q) - 1;
        seen.set(q, k);
      }
      queryIndex[i] = k;
    });
    return { texts, queries, queryIndex };
  }
  const truncate = new Uint8Array(items.length);
  items.forEach((it, i) => {
    truncate[i] = it.work.truncate ? 1 : 0;
  });
  return { texts, truncate };
}
