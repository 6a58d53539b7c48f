// Idempotency keys end to end (in-memory store, the embedded default): real simulator, agent,
// control plane and router processes, the official openai SDK as the client. 50 concurrent
// repeats of one key generate once and get 50 identical answers (JSON and SSE); a stream cut by
// its client and resumed with Last-Event-ID concatenates to the uninterrupted text and the engine
// generates once; another body is a 409; a key expires after its TTL; the same key under two API
// keys does not collide; the usage record is written once, with the full usage.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { startStack, setSimFaults, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { sleep } from '../../../common/process.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const TTL_MS = 4_000;
const GRACE_MS = 1_500;

describe('idempotency keys (one router, memory store)', () => {
  let stack: Stack;
  const client = (apiKey = 'sk-test-a') => new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
  const completed = async () => (await simState(stack.sims.get('a')!.url)).completed;
  const usageRecords = async () => {
    const res = await fetch(`${stack.controlPlane!.url}/v1/admin/usage?limit=10000`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.ok(res.ok, `usage query: ${res.status}`);
    return ((await res.json()) as { data: { id: string; promptTokens: number; completionTokens: number; outcome: string }[] }).data;
  };
  const idem = (key: string, extra: Record<string, string> = {}) => ({ headers: { 'Idempotency-Key': key, ...extra } });
  const metric = async (outcome: string) => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const m = text.match(new RegExp(`^router_idempotent_requests_total\\{outcome="${outcome}"\\} (\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  };

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      // 25 ms per decode step: a generation takes long enough for repeats to arrive while it runs.
      sims: [{ id: 'a', args: ['--max-num-seqs', '256', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      // ignore_eos is opt-in (docs/request-fields.md).
      router: {
        admission: { enabled: false },
        idempotency: { ttlMs: TTL_MS, disconnectGraceMs: GRACE_MS },
        requestFields: { extras: { vllm: ['ignore_eos'] } },
      },
    });
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
  });

  it('50 concurrent non-streaming repeats of one key: one generation, 50 identical answers, one usage record', async () => {
    const before = await completed();
    const recordsBefore = (await usageRecords()).length;
    const key = randomUUID();
    const body = { model: DEFAULT_MODEL, messages: [{ role: 'user' as const, content: `tell me about batching ${key}` }], max_tokens: 40 };
    const c = client();
    const answers = await Promise.all(Array.from({ length: 50 }, () => c.chat.completions.create(body, idem(key))));
    assert.equal(new Set(answers.map((a) => JSON.stringify(a))).size, 1, 'every repeat got the same answer');
    assert.ok(answers[0]!.choices[0]!.message.content!.length > 0);
    assert.equal((await completed()) - before, 1, 'the engine generated once');
    // After it finished, the stored answer (and still no generation).
    const again = await c.chat.completions.create(body, idem(key));
    assert.deepEqual(again, answers[0]);
    assert.equal((await completed()) - before, 1);
    // Usage: one record, with the real tokens; joins and replays add none.
    const added = await waitFor(async () => {
      const r = await usageRecords();
      return r.length > recordsBefore ? r.slice(recordsBefore) : undefined;
    });
    // An absence check: usage records are flushed in batches every 200 ms (usage sink); 600 ms is three flushes.
    await sleep(600);
    const all = (await usageRecords()).slice(recordsBefore);
    assert.equal(all.length, 1, `one usage record, got ${all.length}`);
    assert.equal(added![0]!.completionTokens, answers[0]!.usage!.completion_tokens);
    assert.ok((await metric('joined')) >= 1);
    assert.ok((await metric('replayed')) >= 1);
  });

  it('50 concurrent streaming repeats of one key: one generation, 50 identical streams', async () => {
    const before = await completed();
    const key = randomUUID();
    const body = {
      model: DEFAULT_MODEL,
      messages: [{ role: 'user' as const, content: `stream it ${key}` }],
      max_tokens: 40,
      stream: true as const,
    };
    const c = client();
    const texts = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const stream = await c.chat.completions.create(body, idem(key));
        const chunks: string[] = [];
        for await (const chunk of stream) chunks.push(JSON.stringify(chunk));
        return chunks.join('\n');
      }),
    );
    assert.equal(new Set(texts).size, 1, 'every repeat got the same chunks');
    assert.ok(texts[0]!.split('\n').length > 3);
    assert.equal((await completed()) - before, 1, 'the engine generated once');
  });

  it('a stream cut by its client resumes with Last-Event-ID: the text equals an uninterrupted run, generated once', async () => {
    const body = {
      model: DEFAULT_MODEL,
      messages: [{ role: 'user' as const, content: 'a long story about GPUs' }],
      max_tokens: 60,
      seed: 7,
      stream: true as const,
    };
    const c = client();
    const collect = async (stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, stopAfter = Infinity) => {
      let text = '';
      let n = 0;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (++n >= stopAfter) break; // leaving the loop aborts the request: the client is gone
      }
      return { text, n };
    };
    const reference = await collect(await c.chat.completions.create(body));
    assert.ok(reference.text.split(' ').length > 10, 'a long enough answer to cut');
    const before = await simState(stack.sims.get('a')!.url);

    const key = randomUUID();
    // Request ids of our own, so the usage records of exactly these two requests can be counted
    // (records of earlier tests may still be arriving in batches).
    const ids = [`cut-${randomUUID()}`, `resume-${randomUUID()}`];
    const first = await collect(await c.chat.completions.create(body, idem(key, { 'x-request-id': ids[0]! })), 5);
    assert.equal(first.n, 5);
    await sleep(100);
    const rest = await collect(
      await c.chat.completions.create(body, idem(key, { 'Last-Event-ID': String(first.n), 'x-request-id': ids[1]! })),
    );
    assert.equal(first.text + rest.text, reference.text);

    const afterState = await simState(stack.sims.get('a')!.url);
    assert.equal(afterState.completed - before.completed, 1, 'the engine generated once');
    assert.equal(afterState.aborted - before.aborted, 0, 'the cut did not cancel the generation');
    // One usage record for the pair, charged with the whole generation (not the 5 chunks the client saw).
    const ours = async () => (await usageRecords()).filter((r) => ids.includes(r.id));
    const added = await waitFor(async () => {
      const r = await ours();
      return r.length ? r : undefined;
    });
    // An absence check: three usage-sink flushes (200 ms each) for a second record to show up.
    await sleep(600);
    assert.deepEqual(
      (await ours()).map((r) => r.id),
      [ids[0]],
      "one record, the generating request's",
    );
    const whole = await c.chat.completions.create({ ...body, stream: false });
    assert.equal(added![0]!.completionTokens, whole.usage!.completion_tokens);
  });

  it("the same key with another body is a 409 in OpenAI's shape", async () => {
    const key = randomUUID();
    const c = client();
    await c.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'one' }], max_tokens: 3 }, idem(key));
    const conflicts = await metric('conflict');
    await assert.rejects(
      c.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'two' }], max_tokens: 3 }, idem(key)),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError);
        assert.equal(err.status, 409);
        assert.equal(err.code, 'idempotency_key_reused');
        assert.equal(err.type, 'invalid_request_error');
        return true;
      },
    );
    // A streaming request differs from the non-streaming one: also a conflict.
    await assert.rejects(
      c.chat.completions.create(
        { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'one' }], max_tokens: 3, stream: true },
        idem(key),
      ),
      (err: unknown) => (err as { status?: number }).status === 409,
    );
    assert.equal(await metric('conflict'), conflicts + 2);
    // A malformed key is a 400, not a crash.
    await assert.rejects(
      c.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'one' }], max_tokens: 3 }, idem('has space')),
      (err: unknown) =>
        (err as { status?: number; code?: string }).status === 400 && (err as { code?: string }).code === 'invalid_idempotency_key',
    );
  });

  it('a key expires after its TTL: the same key then runs again', async () => {
    const key = randomUUID();
    const c = client();
    const before = await completed();
    await c.completions.create({ model: DEFAULT_MODEL, prompt: 'expire me', max_tokens: 3 }, idem(key));
    await assert.rejects(
      c.completions.create({ model: DEFAULT_MODEL, prompt: 'something else', max_tokens: 3 }, idem(key)),
      (err: unknown) => (err as { status?: number }).status === 409,
    );
    // A lower bound: the key's TTL has passed, whatever the load.
    await sleep(TTL_MS + 500);
    const later = await c.completions.create({ model: DEFAULT_MODEL, prompt: 'something else', max_tokens: 3 }, idem(key));
    assert.equal(later.object, 'text_completion');
    assert.equal((await completed()) - before, 2);
  });

  it('the same key under two API keys does not collide', async () => {
    const key = randomUUID();
    const before = await completed();
    const x = { model: DEFAULT_MODEL, messages: [{ role: 'user' as const, content: 'for tenant a' }], max_tokens: 5 };
    const a = await client('sk-tenant-a').chat.completions.create(x, idem(key));
    // Another body under the other API key: not a conflict with a's record.
    await client('sk-tenant-b').chat.completions.create({ ...x, messages: [{ role: 'user', content: 'for tenant b' }] }, idem(key));
    // The same body under a third API key: generated again, never a's stored answer.
    const c = await client('sk-tenant-c').chat.completions.create(x, idem(key));
    assert.notEqual(c.id, a.id);
    assert.equal((await completed()) - before, 3);
  });

  it('a failed first attempt does not poison the key: the repeat runs again', async () => {
    const key = randomUUID();
    const c = client();
    const body = { model: DEFAULT_MODEL, messages: [{ role: 'user' as const, content: 'fails first' }], max_tokens: 5 };
    await setSimFaults(stack.sims.get('a')!.url, { http5xx: true });
    try {
      await assert.rejects(c.chat.completions.create(body, idem(key)), (err: unknown) => (err as { status?: number }).status! >= 500);
    } finally {
      await setSimFaults(stack.sims.get('a')!.url, { http5xx: false });
    }
    const before = await completed();
    const ok = await c.chat.completions.create(body, idem(key));
    assert.ok(ok.choices[0]!.message.content);
    assert.equal((await completed()) - before, 1, 'the repeat generated');
  });

  it('a cut stream nobody resumes is cancelled after the grace period, and its key released', async () => {
    const key = randomUUID();
    const sim = stack.sims.get('a')!.url;
    const before = await simState(sim);
    // ignore_eos (vLLM's sampling parameter): 200 tokens at 25 ms a step outlast the grace period.
    const body = {
      model: DEFAULT_MODEL,
      messages: [{ role: 'user' as const, content: 'nobody comes back' }],
      max_tokens: 200,
      stream: true as const,
      ignore_eos: true,
    };
    const stream = await client().chat.completions.create(body, idem(key));
    let n = 0;
    for await (const chunk of stream) {
      void chunk;
      if (++n === 2) break;
    }
    const cutAt = Date.now();
    // A third of the grace: the generation must still run here; a timer this short overshooting by
    // two thirds of GRACE_MS would take a stall far beyond what the suite sees.
    await sleep(GRACE_MS / 3);
    assert.equal((await simState(sim)).aborted, before.aborted, 'still generating during the grace period');
    await waitFor(async () => (await simState(sim)).aborted > before.aborted, 15_000);
    assert.ok(Date.now() - cutAt >= GRACE_MS / 2, 'cancelled after the grace period, not at once');
    assert.equal((await simState(sim)).completed, before.completed);
    // The key was released: the same request runs again and completes.
    const executed = await metric('executed');
    let chunks = 0;
    for await (const chunk of await client().chat.completions.create(body, idem(key))) {
      void chunk;
      chunks++;
    }
    assert.ok(chunks > 100);
    assert.equal(await metric('executed'), executed + 1, 'the repeat owned the key anew');
  });
});
