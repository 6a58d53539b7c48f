// End to end with the official `openai` SDK through real processes, with agents fronting the TGI
// simulator: chat and completions (streaming and not) through a TGI node look exactly like
// through a vLLM node, an old TGI without /v1/completions is served by translation, and a mixed
// pool (one vLLM + one TGI node, same model name) serves from both.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const TGI_MODEL = 'tgi-only-model';
const OLD_TGI_MODEL = 'tgi-1.4.0-model';
const VLLM_MODEL = 'vllm-only-model';

describe('TGI-fronting agents end to end with the openai SDK', () => {
  let stack: Stack;
  let client: OpenAI;

  before(async () => {
    stack = await startStack({
      sims: [
        { id: 'sim-tgi', kind: 'tgi', model: TGI_MODEL },
        { id: 'sim-tgi-old', kind: 'tgi', model: OLD_TGI_MODEL, args: ['--tgi-version', '1.4.0'] },
        { id: 'sim-vllm', model: VLLM_MODEL },
        { id: 'sim-mixed-tgi', kind: 'tgi' },
        { id: 'sim-mixed-vllm' },
      ],
      agents: [
        { id: 'gpu-tgi', sim: 'sim-tgi' },
        { id: 'gpu-tgi-old', sim: 'sim-tgi-old' },
        { id: 'gpu-vllm', sim: 'sim-vllm' },
        { id: 'gpu-mixed-tgi', sim: 'sim-mixed-tgi' },
        { id: 'gpu-mixed-vllm', sim: 'sim-mixed-vllm' },
      ],
    });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    await waitFor(async () => {
      const models = await listModels(stack.routerUrl);
      return [TGI_MODEL, OLD_TGI_MODEL, VLLM_MODEL, DEFAULT_MODEL].every((m) => models.includes(m));
    }, 20_000);
    // both nodes of the mixed pool ready (the model is listed once the first is)
    await waitFor(
      async () => {
        const seen = new Set<string>();
        await Promise.all(
          Array.from({ length: 12 }, async () => {
            const { response } = await client.chat.completions
              .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 })
              .withResponse();
            seen.add(response.headers.get('x-backend') ?? '');
          }),
        );
        return seen.size === 2;
      },
      20_000,
      200,
    );
  });

  after(async () => {
    await stack?.stop();
  });

  it('chat, non-streaming: an OpenAI chat.completion with an id, the model name, usage and an OpenAI finish reason', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: TGI_MODEL, messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 12 })
      .withResponse();
    assert.equal(response.headers.get('x-backend'), 'node:gpu-tgi');
    assert.equal(data.object, 'chat.completion');
    assert.match(data.id, /^chatcmpl-[0-9a-f]{16}$/);
    assert.equal(data.model, TGI_MODEL);
    assert.equal(data.choices[0]!.message.role, 'assistant');
    assert.ok((data.choices[0]!.message.content ?? '').length > 0);
    assert.ok(['stop', 'length'].includes(data.choices[0]!.finish_reason));
    assert.ok(data.usage!.prompt_tokens > 0);
    assert.ok(data.usage!.completion_tokens > 0 && data.usage!.completion_tokens <= 12);
  });

  it('chat, streaming: one id across chunks, text, a finish reason; usage only when asked', async () => {
    for (const includeUsage of [false, true]) {
      const stream = await client.chat.completions.create({
        model: TGI_MODEL,
        messages: [{ role: 'user', content: `Stream please ${includeUsage}` }],
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      const ids = new Set<string>();
      let text = '';
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      let chunks = 0;
      for await (const c of stream) {
        chunks++;
        ids.add(c.id);
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.model, TGI_MODEL);
        if (c.usage) usage = c.usage;
        for (const ch of c.choices) {
          text += ch.delta.content ?? '';
          if (ch.finish_reason) finish = ch.finish_reason;
        }
      }
      assert.ok(chunks > 1);
      assert.equal(ids.size, 1);
      assert.match([...ids][0]!, /^chatcmpl-/);
      assert.ok(text.length > 0);
      assert.ok(!text.includes('</s>'), 'the end-of-sequence token is not text');
      assert.ok(finish === 'stop' || finish === 'length', `finish ${finish}`);
      if (includeUsage) assert.ok(usage && usage.completion_tokens > 0 && usage.prompt_tokens > 0);
      else assert.equal(usage, undefined);
    }
  });

  it("completions through TGI's /v1/completions: finish reasons mapped, no special-token text, usage", async () => {
    const r = await client.completions.create({ model: TGI_MODEL, prompt: 'Once upon a time', max_tokens: 200 });
    assert.equal(r.object, 'text_completion');
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.model, TGI_MODEL);
    assert.equal(r.choices[0]!.finish_reason, 'stop'); // eos_token -> stop (the sim stops before 200)
    assert.ok(r.usage!.completion_tokens > 0);

    const stream = await client.completions.create({
      model: TGI_MODEL,
      prompt: 'Once upon a time',
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, r.choices[0]!.text, 'same prompt, same deterministic text');
    assert.ok(!text.includes('</s>'));
    assert.equal(finish, 'stop');
    assert.equal(usage?.completion_tokens, r.usage!.completion_tokens);
  });

  it('completions on a TGI without /v1/completions (1.4.0): translated to /generate_stream and /generate', async () => {
    const r = await client.completions.create({ model: OLD_TGI_MODEL, prompt: 'The GPU', max_tokens: 5 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, OLD_TGI_MODEL);
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.equal(r.usage!.completion_tokens, 5);
    assert.ok(r.usage!.prompt_tokens > 0);

    const stream = await client.completions.create({
      model: OLD_TGI_MODEL,
      prompt: 'The GPU',
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    const ids = new Set<string>();
    for await (const c of stream) {
      ids.add(c.id);
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(ids.size, 1);
    assert.equal(text, r.choices[0]!.text);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 5);
  });

  it('a request TGI refuses (422 validation) reaches the client as the same 400 a vLLM node gives', async () => {
    const tooLong = { messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 1_000_000 };
    // The router refuses what cannot fit a node's context itself (docs/request-fields.md); this one
    // fits its ~4 chars/token estimate of the prompt but not TGI's own count, so TGI validates it.
    const tgiTooLong = { ...tooLong, max_tokens: 4_093 };
    const fromTgi = await client.chat.completions.create({ model: TGI_MODEL, ...tgiTooLong }).then(
      () => null,
      (e: unknown) => e,
    );
    const fromVllm = await client.chat.completions.create({ model: VLLM_MODEL, ...tooLong }).then(
      () => null,
      (e: unknown) => e,
    );
    for (const e of [fromTgi, fromVllm]) {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.status, 400);
    }
    assert.match((fromTgi as InstanceType<typeof OpenAI.BadRequestError>).message, /must be <= 4096/);
    // streaming: TGI reports validation inside a 200 stream; the client still gets a 400
    const streamed = await client.chat.completions.create({ model: TGI_MODEL, ...tgiTooLong, stream: true }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(streamed instanceof OpenAI.BadRequestError, String(streamed));
  });

  it('mixed pool: one vLLM and one TGI node serve the same model, with the same response shape', async () => {
    const backends = new Map<string, string[]>();
    await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const { data, response } = await client.chat.completions
          .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: `mixed ${i}` }], max_tokens: 8 })
          .withResponse();
        const b = response.headers.get('x-backend') ?? '';
        assert.equal(data.model, DEFAULT_MODEL);
        assert.match(data.id, /^chatcmpl-/);
        assert.ok((data.choices[0]!.message.content ?? '').length > 0);
        assert.ok(data.usage!.completion_tokens > 0);
        backends.set(b, [...(backends.get(b) ?? []), data.choices[0]!.finish_reason]);
      }),
    );
    assert.deepEqual([...backends.keys()].sort(), ['node:gpu-mixed-tgi', 'node:gpu-mixed-vllm']);

    // streams too, from both (the scheduler places by load, so a round may land on one node:
    // a few rounds, not a fixed split)
    const seen = new Set<string>();
    for (let round = 0; round < 5 && seen.size < 2; round++)
      await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const { data: stream, response } = await client.chat.completions
            .create({
              model: DEFAULT_MODEL,
              messages: [{ role: 'user', content: `s ${i}` }],
              stream: true,
              stream_options: { include_usage: true },
            })
            .withResponse();
          seen.add(response.headers.get('x-backend') ?? '');
          let text = '';
          let usage: OpenAI.CompletionUsage | undefined;
          for await (const c of stream) {
            if (c.usage) usage = c.usage;
            for (const ch of c.choices) text += ch.delta.content ?? '';
          }
          assert.ok(text.length > 0);
          assert.ok(usage && usage.completion_tokens > 0);
        }),
      );
    assert.equal(seen.size, 2);
  });
});
