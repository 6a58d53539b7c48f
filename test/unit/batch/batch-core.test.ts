// The batch pieces without processes: input parsing (OpenAI's line-numbered errors), how an
// answer is classified (retry, yield, error file), and the file store's lease rules: only the
// lease holder writes a line, a line is written once, and a restart makes leased items claimable
// while keeping every line already written.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInput, errorLine } from '../../../router/batch/lines.ts';
import { classify } from '../../../router/batch/runner.ts';
import { FileBatchStore } from '../../../router/batch/file-store.ts';
import { signWebhook } from '../../../router/batch/webhook.ts';

const line = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [] }, ...extra });

describe('batch input parsing', () => {
  it('reads items in order and names each bad line', () => {
    const ok = parseInput(`${line('a')}\n\n${line('b')}\n`, '/v1/chat/completions', 10);
    assert.deepEqual(ok.errors, []);
    assert.deepEqual(
      ok.items.map((i) => [i.index, i.custom_id]),
      [
        [0, 'a'],
        [1, 'b'],
      ],
    );
    const bad = parseInput(
      [
        line('a'),
        'nope',
        line('a'),
        line('c', { url: '/v1/completions' }),
        JSON.stringify({ custom_id: 'd', method: 'POST', url: '/v1/chat/completions', body: {} }),
      ].join('\n'),
      '/v1/chat/completions',
      10,
    );
    assert.deepEqual(
      bad.errors.map((e) => [e.line, e.code]),
      [
        [2, 'invalid_json_line'],
        [3, 'duplicate_custom_id'],
        [4, 'mismatched_endpoint'],
        [5, 'missing_required_parameter'],
      ],
    );
    assert.equal(parseInput('', '/v1/chat/completions', 10).errors[0]!.code, 'empty_file');
    assert.equal(parseInput(`${line('a')}\n${line('b')}`, '/v1/chat/completions', 1).errors[0]!.code, 'too_many_requests');
  });
});

describe('batch answer classification', () => {
  const err = (status: number, code: string) => ({
    status,
    requestId: 'r',
    body: { error: { message: 'x', type: 't', param: null, code } },
  });
  it('retries server errors and rate limits, yields to a busy lane, fails 4xx and exhausted budgets at once', () => {
    assert.equal(classify({ status: 200, body: {}, requestId: 'r' }), 'ok');
    assert.equal(classify(err(429, 'lane_shed')), 'yield');
    assert.equal(classify(err(503, 'lane_queue_timeout')), 'yield');
    assert.equal(classify(err(429, 'rate_limit_exceeded')), 'retryable');
    assert.equal(classify(err(502, 'upstream_error')), 'retryable');
    assert.equal(classify({ status: 0, body: undefined, requestId: '' }), 'retryable');
    assert.equal(classify(err(429, 'insufficient_quota')), 'permanent');
    assert.equal(classify(err(404, 'model_not_found')), 'permanent');
    assert.equal(classify(err(400, 'invalid_value')), 'permanent');
  });
});

describe('batch file store leases', () => {
  it('writes each line once, only for the lease holder, and survives a reload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'icp-batch-unit-'));
    try {
      const items = parseInput([line('a'), line('b'), line('c')].join('\n'), '/v1/chat/completions', 10).items;
      const s = new FileBatchStore(dir, 10);
      const w = await s.itemFiles.writer('batch_1');
      for (const it of items) await w.add(it);
      assert.equal(await w.done(), 3);
      await s.initItems('batch_1', items.length, 1_000);
      assert.equal((await s.getItem('batch_1', 2))!.custom_id, 'c');
      const [c0, c1, c2] = await s.claim('batch_1', 10, 1_000, 500, 'r1');
      assert.ok(c0 && c1 && c2);
      assert.deepEqual(await s.claim('batch_1', 10, 1_200, 500, 'r2'), [], 'leased items are not claimable');
      // The lease ran out: another replica takes item 0; the first holder's answer is refused.
      const [again] = await s.claim('batch_1', 1, 1_600, 500, 'r2');
      assert.equal(again!.index, 0);
      assert.equal(await s.finish('batch_1', c0, 'output', 'late'), false);
      assert.equal(await s.finish('batch_1', again!, 'output', 'first'), true);
      assert.equal(await s.finish('batch_1', again!, 'output', 'twice'), false);
      assert.equal(await s.retry('batch_1', c1, 5_000, true), true);
      assert.equal(
        await s.deadLetter('batch_1', c2, errorLine(items[2]!, 'x', 'y'), {
          index: 2,
          custom_id: 'c',
          attempts: 3,
          status_code: 500,
          error: { code: null, message: 'y' },
          failed_at: 1,
        }),
        true,
      );
      assert.deepEqual(await s.counts('batch_1'), { pending: 1, output: 1, errors: 1, dead: 1 });
      // A claim of item 1 is pending when the process "crashes": the reload frees it at once.
      const [held] = await s.claim('batch_1', 1, 6_000, 60_000, 'r1');
      assert.equal(held!.index, 1);
      assert.equal(held!.attempts, 1);
      await s.close();
      const reloaded = new FileBatchStore(dir, 10);
      assert.deepEqual(await reloaded.counts('batch_1'), { pending: 1, output: 1, errors: 1, dead: 1 });
      assert.equal((await reloaded.results('batch_1', 'output')).get(0), 'first');
      const [free] = await reloaded.claim('batch_1', 10, Date.now(), 500, 'r3');
      assert.equal(free!.index, 1);
      assert.equal(await reloaded.requeue('batch_1', Date.now()), 1);
      assert.deepEqual(await reloaded.counts('batch_1'), { pending: 2, output: 1, errors: 0, dead: 0 });
      await reloaded.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('batch webhook signature', () => {
  it('is the Standard Webhooks HMAC over id.timestamp.body, whsec_ secrets decoded', async () => {
    const secret = `whsec_${Buffer.from('k3y').toString('base64')}`;
    const sig = signWebhook(secret, 'evt_1', 1_700_000_000, '{"a":1}');
    const { createHmac } = await import('node:crypto');
    assert.equal(sig, `v1,${createHmac('sha256', Buffer.from('k3y')).update('evt_1.1700000000.{"a":1}').digest('base64')}`);
    assert.notEqual(signWebhook(secret, 'evt_1', 1_700_000_001, '{"a":1}'), sig);
  });
});
