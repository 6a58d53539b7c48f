// Request-field hygiene (issue 17, item 7; docs/request-fields.md) against a real router, control
// plane, agent, simulated vLLM (4096-token context) and simulated OpenAI behind a fallback chain:
// unknown and risky engine fields are a 400 naming the field; a wrongly typed field names its
// expected type; a prompt no node can hold is a 400 context_length_exceeded that is neither
// retried nor sent to the fallback provider; /rerank's default model obeys the tenant's
// allowedModels; media URLs in chat content are data: or an allowed domain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { adminApi, startStack, waitFor, modelOwner, simState, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const OPENAI_KEY = 'sk-test-fields-openai-5e2a7c';
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const MAX_CONTEXT = 4096;
const RERANKER = 'glove-100d-rerank';

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

describe('request fields: allow-list, types, context, rerank tenancy, media URLs', () => {
  let stack: Stack;
  let keyAll = '';
  let keyLimited = '';

  const admin = adminApi(() => stack.controlPlane!.url, ADMIN_TOKEN);
  const newKey = async (name: string, policy: object) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name, policy })) as { id: string };
    return ((await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string }).key;
  };
  const post = async (path: string, body: unknown, key = keyAll) => {
    const res = await fetch(`${stack.routerUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, body: json as ErrorBody & Record<string, unknown> };
  };
  const chat = (extra: Record<string, unknown>, key?: string) =>
    post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3, ...extra }, key);
  const completion = (extra: Record<string, unknown>) =>
    post('/v1/completions', { model: DEFAULT_MODEL, prompt: 'Hello', max_tokens: 3, ...extra });
  const providerCalls = async () =>
    ((await (await fetch(`${stack.providerSims.get('openai-sim')!.url}/sim/state`)).json()) as { requests: unknown[] }).requests.length;
  const engineSeen = async () => {
    const s = await simState(stack.sims.get('sim-a')!.url);
    return s.completed + s.aborted + s.running + s.waiting;
  };
  const assert400 = (r: { status: number; body: ErrorBody }, param: string, code: string, what: string) => {
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.type, 'invalid_request_error', what);
    assert.equal(r.body.error.param, param, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, `${what}: ${JSON.stringify(r.body)}`);
  };

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      // A prompt of ~30k tokens fits neither the context (4096) nor the KV cache (8192) of the only node.
      sims: [{ id: 'sim-a', args: ['--max-model-len', String(MAX_CONTEXT), '--kv-cache-tokens', '8192'] }],
      // The agent reports the KV capacity: the scheduler's kv-capacity filter then drops the node for such a prompt (503 no_ready_node before).
      agents: [{ id: 'gpu-a', sim: 'sim-a', engine: { kvCacheCapacityTokens: 8192 } }],
      providerSims: [{ id: 'openai-sim', apiKey: OPENAI_KEY }],
      routerEnv: { ICP_TEST_OPENAI_KEY: OPENAI_KEY },
      router: ({ providerSims }) => ({
        auth: { mode: 'required' },
        requestFields: { mediaDomains: ['images.example.com', '*.cdn.example.org'] },
        embeddings: {
          models: [
            {
              id: RERANKER,
              kind: 'rerank',
              path: 'models/glove-100d-rerank/model.onnx',
              tokenizer: 'models/glove-100d-rerank/tokenizer.json',
              output: 'logits',
              maxLength: 256,
              workers: 1,
            },
          ],
        },
        fallback: {
          providers: { openai: { kind: 'openai', baseUrl: `${providerSims.get('openai-sim')!.url}/v1`, apiKeyEnv: 'ICP_TEST_OPENAI_KEY' } },
          chains: { [DEFAULT_MODEL]: ['local', 'openai:gpt-4o-mini'] },
          retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
        },
      }),
    });
    keyAll = await newKey('all', {});
    keyLimited = await newKey('limited', { allowedModels: [DEFAULT_MODEL] });
    await waitFor(
      async () => (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= 2,
      10_000,
      50,
    );
    await waitFor(async () => (await modelOwner(stack.routerUrl, DEFAULT_MODEL)) === 'gpu-pool', 20_000);
    // The router has the node's context once its status arrived: a request that fits is served.
    await waitFor(async () => (await chat({})).status === 200, 10_000, 100);
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
  });

  it('refuses unknown and risky engine fields with 400 unknown_parameter naming the field, before any engine call', async () => {
    const before = await engineSeen();
    for (const [field, value] of [
      ['best_of', 1000],
      ['ignore_eos', true],
      ['use_beam_search', true],
      ['logits_processors', ['os.system']],
      ['chat_template', '{{ 7*7 }}'],
      ['prompt_embeds', 'AAAA'],
      ['kv_transfer_params', { do_remote_prefill: true }],
      ['priority', -100],
      ['not_a_field', 1],
    ] as const) {
      const r = await chat({ [field]: value });
      assert400(r, field, 'unknown_parameter', `chat ${field}`);
      assert.match(r.body.error.message, new RegExp(`'${field}'`));
    }
    // best_of is OpenAI's on completions, capped (router.requestFields.maxBestOf = 1).
    assert400(await completion({ best_of: 5 }), 'best_of', 'invalid_value', 'completions best_of');
    assert400(await completion({ ignore_eos: true }), 'ignore_eos', 'unknown_parameter', 'completions ignore_eos');
    // n above the cap, min_tokens above max_tokens.
    assert400(await chat({ n: 4 }), 'n', 'invalid_value', 'n');
    assert400(await chat({ min_tokens: 50, max_tokens: 5 }), 'min_tokens', 'invalid_value', 'min_tokens > max_tokens');
    assert400(await chat({ min_tokens: 50, max_tokens: undefined }), 'min_tokens', 'invalid_value', 'min_tokens without max_tokens');
    // A safe extra of the wrong type names it and its type.
    const topK = await chat({ top_k: 'many' });
    assert400(topK, 'top_k', 'invalid_type', 'top_k type');
    assert.match(topK.body.error.message, /top_k: expected an integer, got string/);
    assert.equal(await engineSeen(), before, 'a refused request reached the engine');
    // The default safe set still passes.
    for (const extra of [
      { top_k: 5 },
      { min_p: 0.1, repetition_penalty: 1.1 },
      { min_tokens: 2, max_tokens: 3 },
      { stop_token_ids: [2] },
    ]) {
      const r = await chat(extra);
      assert.equal(r.status, 200, `${JSON.stringify(extra)}: ${JSON.stringify(r.body)}`);
    }
  });

  it('a wrongly typed field names the field and the expected type, never "Missing required parameter"', async () => {
    const r = await chat({ max_tokens: 'five' });
    assert400(r, 'max_tokens', 'invalid_type', 'max_tokens: "five"');
    assert.equal(r.body.error.message, 'max_tokens: expected an integer, got string');
    const t = await chat({ temperature: 'hot' });
    assert400(t, 'temperature', 'invalid_type', 'temperature');
    assert.equal(t.body.error.message, 'temperature: expected a number, got string');
    const s = await chat({ stop: 5 });
    assert400(s, 'stop', 'invalid_type', 'stop');
    assert.match(s.body.error.message, /^stop: expected a string or an array, got integer$/);
    const c = await completion({ max_tokens: 1.5 });
    assert400(c, 'max_tokens', 'invalid_type', 'max_tokens 1.5');
    assert.equal(c.body.error.message, 'max_tokens: expected an integer, got number');
    // A field that is really missing still says so.
    const m = await post('/v1/chat/completions', { model: DEFAULT_MODEL });
    assert400(m, 'messages', 'missing_required_parameter', 'missing messages');
    assert.equal(m.body.error.message, "Missing required parameter: 'messages'.");
    const e = await post('/v1/embeddings', { model: RERANKER, input: 'x', dimensions: 'ten' });
    assert400(e, 'dimensions', 'invalid_type', 'embeddings dimensions');
  });

  it('a prompt no node can hold is 400 context_length_exceeded: not retried, not sent to the fallback provider', async () => {
    const engineBefore = await engineSeen();
    const huge = 'lorem ipsum '.repeat(10_000); // 120k characters, ~30k tokens
    const r = await post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: [{ role: 'user', content: huge }], max_tokens: 10 });
    assert400(r, 'messages', 'context_length_exceeded', 'oversized prompt');
    assert.match(
      r.body.error.message,
      new RegExp(`^This model's maximum context length is ${MAX_CONTEXT} tokens\\. However, you requested`),
    );
    const stream = await post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: [{ role: 'user', content: huge }], stream: true });
    assert400(stream, 'messages', 'context_length_exceeded', 'oversized prompt, streaming');
    const text = await post('/v1/completions', { model: DEFAULT_MODEL, prompt: huge, max_tokens: 10 });
    assert400(text, 'prompt', 'context_length_exceeded', 'oversized completion prompt');
    // max_tokens above the context is refused, not clamped.
    assert400(await chat({ max_tokens: MAX_CONTEXT * 4 }), 'max_tokens', 'context_length_exceeded', 'max_tokens above context');
    assert400(
      await chat({ max_tokens: undefined, max_completion_tokens: MAX_CONTEXT * 4 }),
      'max_completion_tokens',
      'context_length_exceeded',
      'max_completion_tokens above context',
    );
    // The official SDK (which retries 5xx and 429) gets a BadRequestError at once.
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: keyAll, maxRetries: 3 });
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: huge }], max_tokens: 10 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.code === 'context_length_exceeded',
    );
    assert.equal(await providerCalls(), 0, 'the fallback provider was called');
    assert.equal(await engineSeen(), engineBefore, 'the engine was called');
    // What fits is served by the node as before.
    const ok = await chat({ max_tokens: 5 });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it("/rerank's default model obeys the tenant's allowedModels (404 like any other model)", async () => {
    const body = { query: 'what is a cat', texts: ['a cat is an animal', 'stocks fell'] };
    const allowed = await post('/rerank', body, keyAll);
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    const refused = await post('/rerank', body, keyLimited);
    assert.equal(refused.status, 404, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'model_not_found');
    assert.equal(refused.body.error.param, 'model');
    const named = await post('/v1/rerank', { model: RERANKER, query: 'q', documents: ['d'] }, keyLimited);
    assert.equal(named.status, 404, JSON.stringify(named.body));
    // Unknown fields on the embedding routes too.
    assert400(await post('/rerank', { ...body, evil: 1 }), 'evil', 'unknown_parameter', '/rerank unknown field');
    assert400(await post('/v1/embeddings', { model: RERANKER, input: 'x', foo: 1 }), 'foo', 'unknown_parameter', 'embeddings unknown');
  });

  it('media URLs in chat content: data: and allowed domains pass, anything else is a 400 naming the part', async () => {
    const withPart = (part: object) =>
      post('/v1/chat/completions', {
        model: DEFAULT_MODEL,
        max_tokens: 3,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, part] }],
      });
    const before = await engineSeen();
    for (const [url, what] of [
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'cloud metadata'],
      ['http://[fd00:ec2::254]/latest/meta-data/', 'IPv6 metadata'],
      ['http://metadata.google.internal/computeMetadata/v1/', 'GCP metadata'],
      ['file:///etc/passwd', 'file URL'],
      ['https://evil.example.com/cat.png', 'other domain'],
      ['https://images.example.com.evil.net/cat.png', 'suffix trick'],
      ['https://user:pw@images.example.com/cat.png', 'credentials in URL'],
      ['gopher://images.example.com/', 'other scheme'],
    ] as const) {
      const r = await withPart({ type: 'image_url', image_url: { url } });
      assert400(r, 'messages[0].content[1].image_url.url', 'invalid_media_url', what);
    }
    assert400(
      await withPart({ type: 'video_url', video_url: { url: 'http://127.0.0.1:8080/v' } }),
      'messages[0].content[1].video_url.url',
      'invalid_media_url',
      'video_url',
    );
    assert400(
      await withPart({ type: 'audio_url', audio_url: { url: 'http://10.0.0.1/a.wav' } }),
      'messages[0].content[1].audio_url.url',
      'invalid_media_url',
      'audio_url',
    );
    assert400(
      await withPart({ type: 'file', file: { file_data: 'http://169.254.169.254/x', filename: 'x.pdf' } }),
      'messages[0].content[1].file.file_data',
      'invalid_media_url',
      'file_data URL',
    );
    assert400(
      await withPart({ type: 'image_embeds', image_embeds: 'AAAA' }),
      'messages[0].content[1].type',
      'invalid_value',
      'image_embeds',
    );
    assert.equal(await engineSeen(), before, 'a refused media request reached the engine');
    for (const url of ['data:image/png;base64,iVBORw0KGgo=', 'https://images.example.com/cat.png', 'https://a.cdn.example.org/cat.png']) {
      const r = await withPart({ type: 'image_url', image_url: { url } });
      assert.equal(r.status, 200, `${url}: ${JSON.stringify(r.body)}`);
    }
    const audio = await withPart({ type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } });
    assert.equal(audio.status, 200, JSON.stringify(audio.body));
  });
});
