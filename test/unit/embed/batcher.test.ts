// The batcher against fake workers: coalescing, splitting between workers, per-item failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, ItemError, QueueFullError, toRunInput } from '../../../router/embed/batcher.ts';
import type { InferenceWorker } from '../../../router/embed/inference-worker-handle.ts';
import type { RunInput, RunOutput } from '../../../router/embed/worker-protocol.ts';

/** A worker that answers each text with [text.length] after `delayMs`; texts 'TOO LONG' fail. */
function fakeWorker(log: number[][], delayMs = 2) {
  return {
    alive: true,
    async run(input: RunInput): Promise<RunOutput> {
      log.push(input.texts.map((t) => t.length));
      await new Promise((r) => setTimeout(r, delayMs));
      const n = input.texts.length;
      const data = Float32Array.from(input.texts, (t) => t.length);
      const tokens = Int32Array.from(input.texts, (t) => t.split(' ').length);
      const failures = input.texts.flatMap((t, index) =>
        t === 'TOO LONG' && input.truncate?.[index] !== 1 ? [{ index, message: 'too long', tooLong: { tokens: 999, maxLength: 8 } }] : [],
      );
      return { cols: 1, data: data.buffer, tokens: tokens.buffer, failures, groups: 1, paddedTokens: n, tokenizeMs: 0, runMs: 0 };
    },
    async close() {},
  } as unknown as InferenceWorker;
}

test('toRunInput: truncate flags for texts, distinct queries once for pairs', () => {
  const e = toRunInput([{ work: { text: 'a', truncate: true } }, { work: { text: 'b' } }]);
  assert.deepEqual(e.texts, ['a', 'b']);
  assert.deepEqual([...e.truncate!], [1, 0]);
  const r = toRunInput([
    { work: { text: 'p1', query: 'q' } },
    { work: { text: 'p2', query: 'other' } },
    { work: { text: 'p3', query: 'q' } },
  ]);
  assert.deepEqual(r.queries, ['q', 'other']);
  assert.deepEqual([...r.queryIndex!], [0, 1, 0]);
});

test('a lone request runs at once; requests made while it runs are coalesced into one batch', async () => {
  const log: number[][] = [];
  const b = new Batcher([fakeWorker(log)], { windowMs: 50, maxBatch: 64, maxQueue: 100 });
  const first = b.submit([{ text: 'x' }]);
  assert.equal(log.length, 1, 'dispatched synchronously');
  const rest = Array.from({ length: 9 }, (_, i) => b.submit([{ text: 'y'.repeat(i + 1) }]));
  const out = await Promise.all([first, ...rest]);
  assert.deepEqual(
    log.map((l) => l.length),
    [1, 9],
  );
  assert.deepEqual(
    out.map((o) => o.rows[0]![0]),
    [1, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  await b.close();
});

test('a free worker takes what is queued while another runs, up to maxBatch', async () => {
  const log: number[][] = [];
  const b = new Batcher([fakeWorker(log), fakeWorker(log)], { windowMs: 0, maxBatch: 8, maxQueue: 100 });
  const busy = b.submit([{ text: 'z' }]); // occupies one worker
  const reqs = Array.from({ length: 10 }, () => b.submit([{ text: 'w' }]));
  await Promise.all([busy, ...reqs]);
  assert.equal(log[0]!.length, 1);
  assert.equal(log[1]!.length, 8, 'the free worker takes up to maxBatch');
  assert.equal(log.flat().length, 11);
  await b.close();
});

test('per-item failures reject the request with its lowest failed index; other requests still succeed', async () => {
  const log: number[][] = [];
  const b = new Batcher([fakeWorker(log)], { windowMs: 0, maxBatch: 2, maxQueue: 100 });
  const bad = b.submit([{ text: 'ok' }, { text: 'fine' }, { text: 'TOO LONG' }, { text: 'x' }, { text: 'TOO LONG' }]);
  const good = b.submit([{ text: 'TOO LONG', truncate: true }, { text: 'two words' }]);
  await assert.rejects(bad, (err: unknown) => err instanceof ItemError && err.index === 2 && err.failure.tooLong?.tokens === 999);
  const g = await good;
  assert.deepEqual(
    g.rows.map((r) => r[0]),
    [8, 9],
  );
  assert.equal(g.tokens, 4);
  await b.close();
});

test('the queue is bounded: a request that would overflow it is refused whole', async () => {
  const b = new Batcher([fakeWorker([], 20)], { windowMs: 0, maxBatch: 1, maxQueue: 4 });
  const big = b.submit(Array.from({ length: 10 }, () => ({ text: 'a' }))); // an empty queue admits it
  await assert.rejects(b.submit([{ text: 'b' }]), QueueFullError);
  assert.equal((await big).rows.length, 10);
  await b.close();
});
