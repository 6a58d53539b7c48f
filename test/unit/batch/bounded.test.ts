// Batch input is parsed incrementally (line by line from a stream, a long line never buffered
// whole, reading stops past maxItems), items are read back one at a time from the items file, and
// a finished job leaves the file store's memory (read back from its journal when needed again).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInputStream, readLines } from '../../../router/batch/lines.ts';
import { FileBatchStore } from '../../../router/batch/file-store.ts';
import { completionWindows } from '../../../router/batch/service.ts';
import { batchConfigSchema } from '../../../router/batch/config.ts';
import type { ItemSpec } from '../../../router/batch/types.ts';

const line = (id: string) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'm' } });

/** Splits text into chunks of `size` bytes, so lines straddle chunk boundaries. */
async function* chunks(text: string, size: number) {
  const b = Buffer.from(text);
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe('batch input, incrementally', () => {
  it('splits lines across chunk boundaries and flags an over-long line without holding it', async () => {
    const text = `${line('a')}\r\n\n${'x'.repeat(5_000)}\n${line('b')}`;
    const got: { line: number; text: string | null }[] = [];
    for await (const l of readLines(chunks(text, 7), 1_000)) got.push(l);
    assert.deepEqual(
      got.map((g) => [g.line, g.text === null ? null : g.text.trim().slice(0, 14)]),
      [
        [1, '{"custom_id":"'],
        [2, ''],
        [3, null],
        [4, '{"custom_id":"'],
      ],
    );
  });

  it('hands items on one at a time, names bad lines, stops reading past maxItems', async () => {
    const items: ItemSpec[] = [];
    const ok = await parseInputStream(
      chunks([line('a'), line('b'), line('c')].join('\n'), 5),
      { endpoint: '/v1/chat/completions', maxItems: 10, maxLineBytes: 1_000 },
      async (i) => void items.push(i),
    );
    assert.deepEqual(ok, { count: 3, errors: [] });
    assert.deepEqual(
      items.map((i) => [i.index, i.custom_id]),
      [
        [0, 'a'],
        [1, 'b'],
        [2, 'c'],
      ],
    );
    const long = await parseInputStream(
      chunks(`${line('a')}\n${'y'.repeat(2_000)}\n`, 64),
      { endpoint: '/v1/chat/completions', maxItems: 10, maxLineBytes: 1_000 },
      async () => undefined,
    );
    assert.deepEqual(
      long.errors.map((e) => [e.line, e.code]),
      [[2, 'line_too_long']],
    );
    let handed = 0;
    let read = 0;
    async function* counted() {
      for (let i = 0; i < 1_000; i += 1) {
        read += 1;
        yield Buffer.from(`${line(`id-${i}`)}\n`);
      }
    }
    const many = await parseInputStream(counted(), { endpoint: '/v1/chat/completions', maxItems: 5, maxLineBytes: 1_000 }, async () => {
      handed += 1;
    });
    assert.equal(many.errors[0]!.code, 'too_many_requests');
    assert.ok(read < 10, `stopped reading after the cap (read ${read} lines)`);
    assert.equal(handed, 5);
  });
});

describe('completion windows', () => {
  it('are a Map: only 24h and configured names, never Object.prototype members', () => {
    const w = completionWindows(batchConfigSchema.parse({ completionWindows: { '1h': 3_600_000 } }));
    assert.equal(w.get('24h'), 86_400_000);
    assert.equal(w.get('1h'), 3_600_000);
    for (const k of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) assert.equal(w.get(k), undefined);
    assert.throws(() => batchConfigSchema.parse({ completionWindows: { constructor: 1 } }));
  });
});

describe('a finished job leaves memory', () => {
  it('drops its item state on release and reads it back from disk for a requeue', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'icp-batch-bounded-'));
    try {
      const s = new FileBatchStore(dir, 10);
      const w = await s.itemFiles.writer('batch_m');
      for (const [i, id] of ['a', 'b'].entries())
        await w.add({ index: i, custom_id: id, method: 'POST', url: '/v1/chat/completions', body: {} });
      await w.done();
      await s.initItems('batch_m', 2, 1_000);
      const [c0, c1] = await s.claim('batch_m', 2, 1_000, 60_000, 'r');
      assert.ok(await s.finish('batch_m', c0!, 'output', 'ok-line'));
      assert.ok(
        await s.deadLetter('batch_m', c1!, 'err-line', {
          index: 1,
          custom_id: 'b',
          attempts: 3,
          status_code: 500,
          error: { code: null, message: 'x' },
          failed_at: 1,
        }),
      );
      const state = (s as unknown as { state: Map<string, unknown> }).state;
      assert.equal(state.size, 1);
      s.release('batch_m');
      assert.equal(state.size, 0, 'no item state in memory once released');
      // Needed again (an operator requeues the dead letter): back from the journal.
      assert.equal(await s.requeue('batch_m', Date.now()), 1);
      assert.deepEqual(await s.counts('batch_m'), { pending: 1, output: 1, errors: 0, dead: 0 });
      assert.equal((await s.getItem('batch_m', 1))!.custom_id, 'b');
      // Past its retention the job is deleted whole.
      await s.deleteBatch('batch_m');
      assert.equal(await s.getItem('batch_m', 1), undefined);
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a data dir from before items files', () => {
  it("moves a job's items.json into an items file when the job is next worked on", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'icp-batch-legacy-'));
    try {
      mkdirSync(join(dir, 'batches'), { recursive: true });
      const items = ['a', 'b', 'c'].map((id, index) => ({ index, custom_id: id, method: 'POST', url: '/v1/chat/completions', body: {} }));
      writeFileSync(join(dir, 'batches', 'batch_old.items.json'), JSON.stringify(items));
      writeFileSync(join(dir, 'batches', 'batch_old.journal.jsonl'), `${JSON.stringify({ o: 'f', i: 0, to: 'output', l: 'done' })}\n`);
      const s = new FileBatchStore(dir, 10);
      assert.deepEqual(await s.counts('batch_old'), { pending: 2, output: 1, errors: 0, dead: 0 });
      assert.equal((await s.getItem('batch_old', 2))!.custom_id, 'c');
      assert.equal(existsSync(join(dir, 'batches', 'batch_old.items.json')), false);
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
