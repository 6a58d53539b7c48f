// Dynamic batching for one model: sequences from concurrent requests run together.
// Policy: a free worker takes the queue at once when nothing else is running (so a lone request
// pays no window); while another batch is running it waits up to `windowMs` for more, or until
// `maxBatch` sequences are queued. The queue is bounded: beyond `maxQueue` waiting sequences a
// request is refused whole (the route answers 429).
import { buildBatchInput, groupByLength } from './batch-input.ts';
import type { InferenceWorker } from './inference-worker-handle.ts';
import type { Encoded } from './tokenizer.ts';

export class QueueFullError extends Error {
  constructor(readonly queued: number, readonly maxQueue: number) {
    super(`queue full (${queued} sequences waiting, limit ${maxQueue})`);
  }
}

interface Request {
  rows: Float32Array[];
  remaining: number;
  done: boolean;
  resolve(rows: Float32Array[]): void;
  reject(err: Error): void;
}

interface Item {
  enc: Encoded;
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
  batches: number;
  sequences: number;
  paddedTokens: number;
  realTokens: number;
}

export class Batcher {
  private queue: Item[] = [];
  private readonly idle: InferenceWorker[];
  private inFlight = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly stats: BatcherStats = { batches: 0, sequences: 0, paddedTokens: 0, realTokens: 0 };

  constructor(private readonly workers: InferenceWorker[], private readonly opts: BatcherOptions) {
    this.idle = [...workers];
  }

  get queued(): number {
    return this.queue.length;
  }

  /** One output row per input sequence, in order. */
  submit(encs: Encoded[]): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new Error('model is closed'));
    if (encs.length === 0) return Promise.resolve([]);
    // An empty queue always admits, so one request larger than maxQueue is still served.
    if (this.queue.length > 0 && this.queue.length + encs.length > this.opts.maxQueue) {
      return Promise.reject(new QueueFullError(this.queue.length, this.opts.maxQueue));
    }
    return new Promise((resolve, reject) => {
      const req: Request = { rows: new Array(encs.length), remaining: encs.length, done: false, resolve, reject };
      const now = performance.now();
      encs.forEach((enc, index) => this.queue.push({ enc, req, index, enqueuedAt: now }));
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const waited = performance.now() - this.queue[0]!.enqueuedAt;
      const ready = this.inFlight === 0 || this.queue.length >= this.opts.maxBatch || waited >= this.opts.windowMs;
      if (!ready) {
        this.timer ??= setTimeout(() => {
          this.timer = null;
          this.pump();
        }, Math.max(0, this.opts.windowMs - waited));
        return;
      }
      this.dispatch(this.idle.pop()!, this.queue.splice(0, this.opts.maxBatch));
    }
  }

  private dispatch(worker: InferenceWorker, items: Item[]): void {
    this.inFlight++;
    const groups = groupByLength(items.map((it) => it.enc.ids.length)).map((g) => g.map((i) => items[i]!));
    const inputs = groups.map((g) => buildBatchInput(g.map((it) => it.enc)));
    this.stats.batches++;
    this.stats.sequences += items.length;
    for (const b of inputs) this.stats.paddedTokens += b.batch * b.seq;
    for (const it of items) this.stats.realTokens += it.enc.ids.length;
    worker.run(inputs).then(
      ({ outputs }) => {
        groups.forEach((g, gi) => {
          const out = outputs[gi]!;
          const data = new Float32Array(out.data);
          g.forEach((it, r) => this.deliver(it, data.subarray(r * out.cols, (r + 1) * out.cols)));
        });
      },
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        for (const it of items) this.fail(it.req, e);
      },
    ).finally(() => {
      this.inFlight--;
      if (worker.alive) this.idle.push(worker);
      else if (this.idle.length === 0 && this.inFlight === 0) this.failAll(new Error('all inference workers are gone'));
      this.pump();
    });
  }

  private deliver(it: Item, row: Float32Array): void {
    const req = it.req;
    if (req.done) return;
    req.rows[it.index] = row;
    if (--req.remaining === 0) {
      req.done = true;
      req.resolve(req.rows);
    }
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
    this.failAll(new Error('model is closing'));
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
