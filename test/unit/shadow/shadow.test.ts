// Shadow traffic units: hash sampling, the daily token budget, the control plane's summary and
// bounded file store, and the service's decisions with a fake GPU pool (what a shadow sends, how
// failures and hangs are recorded, the concurrency cap, residency for provider targets).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { isSampled, samplePoint } from '../../../router/shadow/sampling.ts';
import { MemoryShadowBudget } from '../../../router/shadow/budget.ts';
import { shadowConfigSchema } from '../../../router/shadow/config.ts';
import { ShadowService, type PrimaryResult, type ShadowDeps, type ShadowOutcome } from '../../../router/shadow/service.ts';
import type { ShadowSink } from '../../../router/shadow/sink.ts';
import type { DispatchRequest } from '../../../router/upstream/node-dispatch.ts';
import type { Provider, UpstreamDispatch, UpstreamEvent } from '../../../router/upstream/providers/types.ts';
import { summarise, percentile } from '../../../control-plane/shadow/summary.ts';
import { FileShadowStore } from '../../../control-plane/shadow/store.ts';
import { shadowRecordSchema, type ShadowRecord } from '../../../common/shadow-record.ts';
import { errors } from '../../../common/errors.ts';
import { waitFor } from '../../helpers/stack.ts';

const logger = pino({ level: 'silent' });

describe('sampling', () => {
  it('mirrors the configured share, the same way for the same request id', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `req_${i}`);
    for (const percent of [1, 10, 50]) {
      const share = (ids.filter((id) => isSampled('chat->local:m', id, percent)).length / ids.length) * 100;
      assert.ok(Math.abs(share - percent) < Math.max(0.5, percent * 0.05), `${percent}%: got ${share}%`);
    }
    assert.equal(ids.filter((id) => isSampled('r', id, 0)).length, 0);
    assert.equal(ids.filter((id) => isSampled('r', id, 100)).length, ids.length);
    assert.equal(samplePoint('r', 'req_7'), samplePoint('r', 'req_7'));
    // Two rules sample independently.
    const a = ids.filter((id) => isSampled('a', id, 50));
    const both = a.filter((id) => isSampled('b', id, 50)).length / ids.length;
    assert.ok(Math.abs(both - 0.25) < 0.02, `overlap ${both}`);
  });
});

describe('daily token budget (memory)', () => {
  it('refuses a reservation that would pass the budget, settles real usage, and starts over each UTC day', async () => {
    let now = Date.parse('2026-01-01T23:00:00Z');
    const b = new MemoryShadowBudget(() => now);
    assert.equal(await b.reserve('r', 60, 100), true);
    assert.equal(await b.reserve('r', 60, 100), false);
    await b.adjust('r', -30); // real usage was 30
    assert.equal(await b.spent('r'), 30);
    assert.equal(await b.reserve('r', 60, 100), true);
    assert.equal(await b.reserve('other', 100, 100), true, 'budgets are per rule');
    now += 3_600_000; // next day
    assert.equal(await b.spent('r'), 0);
    assert.equal(await b.reserve('r', 100, 100), true);
  });
});

function rec(over: Partial<ShadowRecord> & { primaryMs?: number; shadowMs?: number; pTok?: number; sTok?: number } = {}): ShadowRecord {
  const { primaryMs = 100, shadowMs = 200, pTok = 10, sTok = 20, ...rest } = over;
  return {
    id: `r${Math.random()}`,
    ts: Date.now(),
    alias: 'chat',
    target: 'local:b',
    outcome: 'ok',
    error: null,
    primary: { model: 'a', backend: 'node:1', ttftMs: null, latencyMs: primaryMs, promptTokens: 5, completionTokens: pTok },
    shadow: { model: 'b', backend: 'node:2', ttftMs: 50, latencyMs: shadowMs, promptTokens: 5, completionTokens: sTok },
    similarity: 0.5,
    ...rest,
  };
}

describe('summary', () => {
  it('compares per alias and target: count, error rate, percentiles, mean similarity, token ratio', () => {
    const records = [
      ...Array.from({ length: 20 }, (_, i) => rec({ primaryMs: (i + 1) * 10, shadowMs: (i + 1) * 20, similarity: i % 2 ? 0.9 : 0.7 })),
      rec({ outcome: 'error', error: 'timeout', similarity: null, shadowMs: 99_999, sTok: 0 }),
      rec({ target: 'openai:gpt', similarity: null }),
    ];
    const rows = summarise(records);
    assert.deepEqual(
      rows.map((r) => `${r.alias} ${r.target}`),
      ['chat local:b', 'chat openai:gpt'],
    );
    const r = rows[0]!;
    assert.equal(r.count, 21);
    assert.equal(r.errors, 1);
    assert.equal(r.errorRate, Math.round((1 / 21) * 1e4) / 1e4);
    assert.equal(r.shadow.latencyMs.p50, 200, 'the failed shadow is not in the latency');
    assert.equal(r.shadow.latencyMs.p95, 380);
    assert.equal(r.primary.latencyMs.p95, 190);
    assert.equal(r.meanSimilarity, 0.8);
    assert.equal(r.similarityCount, 20);
    assert.equal(r.tokenRatio, 2);
    assert.equal(rows[1]!.meanSimilarity, null);
    assert.equal(percentile([], 50), null);
  });
});

describe('file store', () => {
  it('keeps only the newest records, in memory and on disk across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadow-store-'));
    try {
      const s = new FileShadowStore(dir, 5);
      for (let i = 0; i < 12; i++) await s.append([rec({ id: `id${i}`, ts: 1_000 + i })]);
      assert.deepEqual(
        (await s.list(0, 100)).map((r) => r.id),
        ['id7', 'id8', 'id9', 'id10', 'id11'],
      );
      assert.deepEqual(
        (await s.list(1_010, 100)).map((r) => r.id),
        ['id10', 'id11'],
      );
      assert.deepEqual(
        (await s.list(0, 2)).map((r) => r.id),
        ['id10', 'id11'],
      );
      await s.close();
      // The file was compacted: at most twice the bound.
      assert.ok(readFileSync(s.file, 'utf8').trim().split('\n').length <= 10);
      const again = new FileShadowStore(dir, 5);
      await again.load();
      assert.deepEqual(
        (await again.list(0, 100)).map((r) => r.id),
        ['id7', 'id8', 'id9', 'id10', 'id11'],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A fake GPU pool: answers with the given events, fails, or hangs; records what it was sent.
function fakePool(mode: 'ok' | 'fail' | 'hang') {
  const sent: DispatchRequest[] = [];
  const chunk = (text: string) =>
    JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'shadow-m', choices: [{ index: 0, delta: { content: text } }] });
  return {
    sent,
    nodes: {
      async dispatch(req: DispatchRequest): Promise<UpstreamDispatch> {
        sent.push(req);
        if (mode === 'fail') throw errors.upstream('engine exploded', 'engine_error');
        if (mode === 'hang')
          await new Promise<void>((_, reject) =>
            req.signal.addEventListener('abort', () => reject(errors.invalidRequest('client closed the request'))),
          );
        const events: UpstreamEvent[] = [
          { event: 'chunkJson', chunkJson: chunk(' world') },
          { event: 'usage', usage: { promptTokens: 7, completionTokens: 2 } } as UpstreamEvent,
        ];
        return {
          backend: 'node:s',
          attempts: 1,
          first: { event: 'chunkJson', chunkJson: chunk('hello') },
          rest: events[Symbol.iterator]() as unknown as AsyncIterator<UpstreamEvent>,
          cancel() {},
        };
      },
    },
  };
}

function service(rules: object[], deps: Partial<ShadowDeps> & Pick<ShadowDeps, 'nodes'>) {
  const written: ShadowRecord[] = [];
  const outcomes: ShadowOutcome[] = [];
  const sink: ShadowSink = {
    enabled: true,
    write: (r) => void written.push(shadowRecordSchema.parse(r)),
    flush: async () => {},
    close: async () => {},
  };
  const svc = new ShadowService(shadowConfigSchema.parse({ rules }), {
    providers: new Map(),
    aliases: {},
    budget: new MemoryShadowBudget(),
    sink,
    logger,
    mayLeave: () => true,
    onOutcome: (_a, _t, o) => void outcomes.push(o),
    ...deps,
  });
  return { svc, written, outcomes };
}

const primary = (over: Partial<PrimaryResult> = {}): PrimaryResult => ({
  requestId: `req_${Math.random()}`,
  operation: 'CHAT_COMPLETIONS',
  body: { model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 },
  model: 'primary-m',
  backend: 'node:p',
  status: 200,
  latencyMs: 12,
  ttftMs: null,
  usage: { promptTokens: 7, completionTokens: 3 },
  content: [JSON.stringify({ choices: [{ message: { content: 'hello world' } }] })],
  ...over,
});

describe('shadow service', () => {
  it('sends the request to the target in the sheddable lane, streamed internally, and records both sides', async () => {
    const pool = fakePool('ok');
    const { svc, written, outcomes } = service([{ alias: 'chat', target: 'local:shadow-m', percent: 100 }], { nodes: pool.nodes });
    svc.mirror(primary());
    await waitFor(() => written.length === 1, 5_000, 5);
    const req = pool.sent[0]!;
    assert.equal(req.model, 'shadow-m');
    assert.equal(req.lane, 'sheddable');
    assert.equal(req.body.stream, true);
    assert.deepEqual(req.body.stream_options, { include_usage: true });
    const r = written[0]!;
    assert.equal(r.outcome, 'ok');
    assert.equal(r.primary.model, 'primary-m');
    assert.equal(r.shadow.backend, 'node:s');
    assert.equal(r.shadow.completionTokens, 2);
    assert.ok(r.shadow.ttftMs !== null);
    assert.equal(r.similarity, null, 'no embedder configured');
    assert.deepEqual(outcomes, ['ok']);
  });

  it('records a failure or a hang as an error, and mirrors nothing for a failed user request', async () => {
    for (const mode of ['fail', 'hang'] as const) {
      const pool = fakePool(mode);
      const { svc, written } = service([{ alias: 'chat', target: 'local:shadow-m', percent: 100, timeoutMs: 200 }], { nodes: pool.nodes });
      svc.mirror(primary({ status: 503 }));
      svc.mirror(primary());
      await waitFor(() => written.length === 1, 5_000, 5);
      assert.equal(pool.sent.length, 1);
      assert.equal(written[0]!.outcome, 'error');
      assert.equal(written[0]!.error, mode === 'fail' ? 'engine_error' : 'timeout');
    }
  });

  it('caps concurrent shadows per rule and keeps provider targets to callers whose data may leave', async () => {
    const pool = fakePool('hang');
    const provider = {
      name: 'openai',
      kind: 'openai',
      supports: () => true,
      generate: async () => {
        throw new Error('not called');
      },
    } as unknown as Provider;
    const { svc, outcomes } = service(
      [
        { alias: 'chat', target: 'local:shadow-m', percent: 100, maxConcurrent: 2, timeoutMs: 300 },
        { alias: 'chat', target: 'openai:gpt-4o-mini', percent: 100 },
      ],
      { nodes: pool.nodes, providers: new Map([['openai', provider]]), mayLeave: (r) => r.dataMayLeave !== false },
    );
    for (let i = 0; i < 4; i++) svc.mirror(primary({ dataMayLeave: false }));
    await waitFor(() => outcomes.length === 8, 5_000, 5);
    const count = (o: ShadowOutcome) => outcomes.filter((x) => x === o).length;
    assert.equal(count('concurrency_limit'), 2);
    assert.equal(count('error'), 2, 'the two admitted ones hung until their timeout');
    assert.equal(count('denied'), 4);
    await svc.close();
  });

  it('refuses a rule naming an unknown provider', () => {
    assert.throws(
      () => service([{ alias: 'chat', target: 'nope:model', percent: 10 }], { nodes: fakePool('ok').nodes }),
      /no provider 'nope'/,
    );
  });
});
