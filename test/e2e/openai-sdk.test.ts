// End to end with the official `openai` npm SDK as the client, against real processes on
// loopback: two simulated vLLM engines, two agents, the control plane and the router.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { defaultEmbeddingsConfig } from '../../router/embed/index.ts';
import { startStack, waitFor, listModels, simState, setSimFaults, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const OTHER_MODEL = 'sim-other-model';

describe('router end to end with the openai SDK', () => {
  let stack: Stack;
  let client: OpenAI;

  before(async () => {
    stack = await startStack({
      sims: [
        { id: 'sim-a', args: ['--speed', '1'] },
        { id: 'sim-b', args: ['--speed', '0.5'] },
        { id: 'sim-c', model: OTHER_MODEL },
      ],
      agents: [
        { id: 'gpu-a', sim: 'sim-a' },
        { id: 'gpu-b', sim: 'sim-b' },
        { id: 'gpu-c', sim: 'sim-c' },
      ],
      router: { aliases: { 'chat-default': DEFAULT_MODEL }, embeddings: defaultEmbeddingsConfig() },
    });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    await waitFor(async () => {
      const models = await listModels(stack.routerUrl);
      return models.includes(DEFAULT_MODEL) && models.includes(OTHER_MODEL);
    }, 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  it('lists served models and aliases', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['chat-default', 'glove-100d-embed', 'glove-100d-rerank', DEFAULT_MODEL, OTHER_MODEL]);
  });

  it("serves embeddings from the router's own ONNX embedder, float and base64", async () => {
    const float = await client.embeddings.create({ model: 'glove-100d-embed', input: ['GPU memory errors', 'the cat sat on the mat'] });
    assert.equal(float.data.length, 2);
    assert.equal(float.data[0]!.embedding.length, 100);
    assert.ok(float.usage.prompt_tokens > 0);
    const b64 = await client.embeddings.create({ model: 'glove-100d-embed', input: 'GPU memory errors', encoding_format: 'base64' });
    // Asked for explicitly, base64 comes back as the raw little-endian float32 string.
    const a = float.data[0]!.embedding;
    const raw = Buffer.from(b64.data[0]!.embedding as unknown as string, 'base64');
    const b = Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
    assert.equal(b.length, 100);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6);
    await assert.rejects(
      client.embeddings.create({ model: 'no-such-embedder', input: 'x' }),
      (e: unknown) => e instanceof OpenAI.NotFoundError,
    );
    await assert.rejects(
      client.embeddings.create({ model: 'glove-100d-embed', input: [] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError,
    );
  });

  it('answers a non-streaming chat completion with real usage', async () => {
    const res = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'Say hello' }],
      max_tokens: 5,
    });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, DEFAULT_MODEL);
    assert.equal(res.choices[0]!.finish_reason, 'length');
    assert.ok((res.choices[0]!.message.content ?? '').length > 0);
    assert.equal(res.usage?.completion_tokens, 5);
    assert.ok((res.usage?.prompt_tokens ?? 0) > 0);
  });

  it('resolves an alias to the served model', async () => {
    const res = await client.chat.completions.create({ model: 'chat-default', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(res.model, DEFAULT_MODEL);
  });

  it('streams a chat completion, with usage only when asked', async () => {
    const collect = async (includeUsage: boolean) => {
      const stream = await client.chat.completions.create({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: 'Count to three' }],
        max_tokens: 6,
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      let text = '';
      let usage: OpenAI.CompletionUsage | undefined | null;
      let chunks = 0;
      let finish: string | null = null;
      for await (const chunk of stream) {
        chunks += 1;
        text += chunk.choices[0]?.delta?.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage;
      }
      return { text, usage, chunks, finish };
    };
    const withUsage = await collect(true);
    assert.ok(withUsage.text.length > 0);
    assert.equal(withUsage.finish, 'length');
    assert.equal(withUsage.usage?.completion_tokens, 6);
    const withoutUsage = await collect(false);
    assert.ok(withoutUsage.text.length > 0);
    assert.equal(withoutUsage.usage, undefined, 'usage chunk must not reach a client that did not ask for it');
  });

  it('answers legacy completions, streaming and not', async () => {
    const res = await client.completions.create({ model: DEFAULT_MODEL, prompt: 'Once upon a time', max_tokens: 4 });
    assert.equal(res.object, 'text_completion');
    assert.ok(res.choices[0]!.text.length > 0);
    assert.equal(res.usage?.completion_tokens, 4);
    const stream = await client.completions.create({ model: DEFAULT_MODEL, prompt: 'Once upon a time', max_tokens: 4, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.ok(text.length > 0);
  });

  it('maps an invalid body to BadRequestError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: 'not a list' as unknown as [] }),
      (err: unknown) =>
        err instanceof OpenAI.BadRequestError && err.status === 400 && (err.error as { param?: string }).param === 'messages',
    );
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 7 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && (err.error as { param?: string }).param === 'temperature',
    );
  });

  it('maps an unknown model to NotFoundError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
    );
  });

  it('frees the engine slot when the client aborts mid-stream', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'Write a long story' }], max_tokens: 5_000, stream: true },
      { signal: ac.signal },
    );
    let got = 0;
    // The SDK ends the iteration quietly when its request is aborted.
    for await (const _ of stream) {
      got += 1;
      if (got === 3) ac.abort();
    }
    assert.equal(got, 3);
    const sims = [stack.sims.get('sim-a')!, stack.sims.get('sim-b')!];
    // The generation was running on one of the engines; after the abort none is running it.
    const state = await waitFor(async () => {
      const states = await Promise.all(sims.map((s) => simState(s.url)));
      return states.every((s) => s.running === 0 && s.waiting === 0) ? states : undefined;
    }, 3_000);
    assert.ok(state!.reduce((n, s) => n + s.aborted, 0) >= 1, 'one engine counts an aborted request');
  });

  it('ends a stream that breaks after its first token with an error event', async () => {
    const sims = [stack.sims.get('sim-a')!, stack.sims.get('sim-b')!];
    for (const s of sims) await setSimFaults(s.url, { failAfterTokens: 3 });
    try {
      const stream = await client.chat.completions.create({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 50,
        stream: true,
      });
      let text = '';
      await assert.rejects(
        async () => {
          for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
        },
        (err: unknown) => err instanceof OpenAI.APIError,
      );
      assert.ok(text.length > 0, 'the tokens before the break reached the client');
    } finally {
      for (const s of sims) await setSimFaults(s.url, { failAfterTokens: null });
    }
  });

  it('retries on another node when one fails before the first token', async () => {
    await setSimFaults(stack.sims.get('sim-a')!.url, { http5xx: true });
    try {
      for (let i = 0; i < 6; i++) {
        const res = await client.chat.completions.create({
          model: DEFAULT_MODEL,
          messages: [{ role: 'user', content: `try ${i}` }],
          max_tokens: 2,
        });
        assert.equal(res.choices.length, 1);
      }
    } finally {
      await setSimFaults(stack.sims.get('sim-a')!.url, { http5xx: false });
    }
  });

  it("counts what it did in the router's /metrics", async () => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.ok(
      value(
        new RegExp(
          `router_requests_total\\{operation="chat",model="${DEFAULT_MODEL}",lane="standard",backend="node",status="200",outcome="ok"\\} (\\d+)`,
        ),
      ) >= 5,
    );
    assert.ok(
      value(
        /router_requests_total\{operation="chat",model="unknown",lane="standard",backend="none",status="404",outcome="error"\} (\d+)/,
      ) >= 1,
    );
    assert.ok(
      value(
        /router_requests_total\{operation="chat",model="unknown",lane="standard",backend="none",status="400",outcome="error"\} (\d+)/,
      ) >= 2,
    );
    assert.ok(value(new RegExp(`router_time_to_first_token_seconds_count\\{model="${DEFAULT_MODEL}",lane="standard"\\} (\\d+)`)) >= 2);
    assert.ok(value(new RegExp(`router_tokens_total\\{model="${DEFAULT_MODEL}",type="output"\\} (\\d+)`)) > 10);
    assert.ok(
      value(/router_node_attempts_total\{node="gpu-a",outcome="retried"\} (\d+)/) >= 1,
      "the 5xx node's failed attempts were retried",
    );
    assert.doesNotMatch(text, /no-such-model/, "a client's raw model string never becomes a label");
  });

  it('drops a killed agent from routing and /v1/models within 2 s', async () => {
    assert.ok((await listModels(stack.routerUrl)).includes(OTHER_MODEL));
    stack.agents.get('gpu-c')!.kill('SIGKILL');
    const t0 = Date.now();
    await waitFor(async () => !(await listModels(stack.routerUrl)).includes(OTHER_MODEL), 2_000, 20);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
    // Nothing is routed to it any more: its model is now an honest 503, not a hang.
    await assert.rejects(
      client.chat.completions.create({ model: OTHER_MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 503,
    );
  });
});
