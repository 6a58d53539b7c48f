// Response cache end to end: a real control plane (tenants and keys), router (with the GloVe
// embedder from models/), agent and simulated vLLM; the official openai SDK as the client.
// Proves: a hit costs no engine call (the simulator's `completed` count stands still) and is
// counted in the metrics; no hit ever crosses tenants (exact or semantic); Cache-Control no-cache
// bypasses the lookup; sampled requests are never cached; a cached answer replays as a stream the
// SDK parses (and a streamed one as JSON); a semantic hit above the threshold, a miss below it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, waitFor, simState, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const THRESHOLD = 0.9;

describe('response cache (router + control plane + simulated engine + GloVe embedder)', () => {
  let stack: Stack;
  let simUrl: string;
  let keysIssued = 0;
  const tenantOf = new Map<OpenAI, string>();
  const admin = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const newTenant = async (policy: object = {}) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name: `t-${keysIssued}`, policy })) as { id: string };
    const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string };
    keysIssued++;
    await waitFor(
      async () =>
        (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= keysIssued,
      5_000,
      20,
    );
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: k.key, maxRetries: 0 });
    tenantOf.set(client, tenant.id);
    return client;
  };
  const completed = async () => (await simState(simUrl)).completed;
  const metric = async (name: string, labels: string) => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  /** Waits until `n` answers were stored (the store runs after the response, in the background). */
  const storedAtLeast = (n: number) => waitFor(async () => (await metric('router_cache_stores_total', 'result="stored"')) >= n, 10_000, 20);

  const ask = async (client: OpenAI, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const { data, response } = await client.chat.completions
      .create(
        {
          model: DEFAULT_MODEL,
          messages: [
            { role: 'system', content: 'Answer briefly.' },
            { role: 'user', content },
          ],
          max_tokens: 8,
          temperature: 0,
          ...extra,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming,
        { headers },
      )
      .withResponse();
    return {
      text: data.choices[0]!.message.content,
      usage: data.usage,
      cache: response.headers.get('x-cache'),
      backend: response.headers.get('x-backend'),
    };
  };
  const askStream = async (client: OpenAI, content: string) => {
    const { data, response } = await client.chat.completions
      .create({
        model: DEFAULT_MODEL,
        messages: [
          { role: 'system', content: 'Answer briefly.' },
          { role: 'user', content },
        ],
        max_tokens: 8,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null = null;
    for await (const chunk of data) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    return { text, usage, finish, cache: response.headers.get('x-cache') };
  };

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: {
        auth: { mode: 'required' },
        embeddings: {
          models: [
            {
              id: 'glove-100d-embed',
              kind: 'embedding',
              path: 'models/glove-100d-embed/model.onnx',
              tokenizer: 'models/glove-100d-embed/tokenizer.json',
              output: 'sentence_embedding',
              maxLength: 256,
              workers: 1,
            },
          ],
        },
        aliases: { uncached: DEFAULT_MODEL, 'short-lived': DEFAULT_MODEL },
        cache: {
          semantic: { enabled: true, model: 'glove-100d-embed', threshold: THRESHOLD },
          aliases: { uncached: { exact: false, semantic: false }, 'short-lived': { ttlSeconds: 1 } },
        },
      },
    });
    simUrl = stack.sims.get('a')!.url;
    await waitFor(
      async () =>
        ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.some(
          (m) => m.id === DEFAULT_MODEL,
        ),
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
  });

  it('an exact hit costs no engine call, is counted, and replays as a stream the SDK parses', async () => {
    const a = await newTenant();
    const first = await ask(a, 'Name three primary colours.');
    assert.equal(first.cache, 'miss');
    await storedAtLeast(1);
    const hitsBefore = await metric('router_cache_lookups_total', 'result="hit"');
    const engineBefore = await completed();

    const again = await ask(a, 'Name three primary colours.');
    assert.equal(again.cache, 'hit');
    assert.equal(again.backend, 'cache');
    assert.equal(again.text, first.text);
    assert.deepEqual(again.usage, first.usage, 'the stored answer carries its original usage');

    const streamed = await askStream(a, 'Name three primary colours.');
    assert.equal(streamed.cache, 'hit');
    assert.equal(streamed.text, first.text, 'the JSON answer split into chunks reads the same');
    assert.ok(streamed.finish, 'a finish_reason arrives');
    assert.equal(streamed.usage?.completion_tokens, first.usage?.completion_tokens);

    assert.equal(await completed(), engineBefore, 'no generation reached the engine');
    assert.equal(await metric('router_cache_lookups_total', 'result="hit"'), hitsBefore + 2);
    assert.ok((await metric('router_cache_saved_tokens_total', 'type="output"')) >= 2 * (first.usage?.completion_tokens ?? 1));

    // Accounted as served by the cache: usage records with backend=cache, zero tokens, zero cost.
    type Rec = { backend: string; promptTokens: number; completionTokens: number; costUsd: number; outcome: string };
    const records: Rec[] = await waitFor(
      async () => {
        const r = (await admin('GET', `/v1/admin/usage?tenant=${tenantOf.get(a)}`)) as { data: Rec[] };
        return r.data.length >= 3 ? r.data : undefined;
      },
      10_000,
      100,
    ).then((r) => r ?? []);
    const fromCache = records.filter((r) => r.backend === 'cache');
    assert.equal(fromCache.length, 2);
    for (const r of fromCache) assert.deepEqual([r.promptTokens, r.completionTokens, r.costUsd, r.outcome], [0, 0, 0, 'ok']);
    assert.ok(
      records.some((r) => r.backend.startsWith('node:') && r.completionTokens > 0),
      'the miss was charged',
    );
  });

  it('a streamed answer is stored and served again as JSON', async () => {
    const a = await newTenant();
    const stored = await metric('router_cache_stores_total', 'result="stored"');
    const first = await askStream(a, 'Count to five.');
    assert.equal(first.cache, 'miss');
    assert.ok(first.text.length > 0);
    await storedAtLeast(stored + 1);
    const engineBefore = await completed();
    const again = await ask(a, 'Count to five.');
    assert.equal(again.cache, 'hit');
    assert.equal(again.text, first.text);
    assert.equal(again.usage?.completion_tokens, first.usage?.completion_tokens);
    assert.equal(await completed(), engineBefore);
  });

  it("never serves one tenant's answer to another, exact or semantic", async () => {
    const a = await newTenant();
    const b = await newTenant();
    const stored = await metric('router_cache_stores_total', 'result="stored"');
    assert.equal((await ask(a, 'What is the capital of France?')).cache, 'miss');
    await storedAtLeast(stored + 1);
    assert.equal((await ask(a, 'What is the capital of France?')).cache, 'hit', 'tenant A hits its own entry');

    const engineBefore = await completed();
    // no-store: B's own answers stay out, so only A's entries could match.
    const noStore = { 'cache-control': 'no-store' };
    assert.equal((await ask(b, 'What is the capital of France?', {}, noStore)).cache, 'miss', 'same request, other tenant: exact miss');
    assert.equal(
      (await ask(b, 'What is the capital city of France?', {}, noStore)).cache,
      'miss',
      'paraphrase, other tenant: semantic miss',
    );
    assert.equal(await completed(), engineBefore + 2, 'both went to the engine');
  });

  it('serves a paraphrase above the threshold and not a different question below it', async () => {
    const a = await newTenant();
    const stored = await metric('router_cache_stores_total', 'result="stored"');
    const first = await ask(a, 'What is the capital of France?');
    assert.equal(first.cache, 'miss');
    await storedAtLeast(stored + 1);
    const semanticBefore = await metric('router_cache_lookups_total', 'result="semantic_hit"');
    const engineBefore = await completed();

    // GloVe cosine to the stored question: 0.94 (above 0.9) ...
    const para = await ask(a, 'What is the capital city of France?');
    assert.equal(para.cache, 'semantic-hit');
    assert.equal(para.text, first.text);
    assert.equal(await completed(), engineBefore);
    // ... 0.80: one word apart, a different answer. Below the threshold, so the engine answers.
    assert.equal((await ask(a, 'What is the capital of Germany?')).cache, 'miss');
    // Another system prompt is another scope, however similar the question.
    const { response } = await a.chat.completions
      .create({
        model: DEFAULT_MODEL,
        messages: [
          { role: 'system', content: 'Answer in French.' },
          { role: 'user', content: 'What is the capital city of France?' },
        ],
        max_tokens: 8,
        temperature: 0,
      })
      .withResponse();
    assert.equal(response.headers.get('x-cache'), 'miss');
    assert.equal(await completed(), engineBefore + 2);
    assert.equal(await metric('router_cache_lookups_total', 'result="semantic_hit"'), semanticBefore + 1);
  });

  it('Cache-Control: no-cache skips the lookup; no-store keeps the answer out', async () => {
    const a = await newTenant();
    const stored = await metric('router_cache_stores_total', 'result="stored"');
    assert.equal((await ask(a, 'Spell cat backwards.')).cache, 'miss');
    await storedAtLeast(stored + 1);
    const engineBefore = await completed();
    assert.equal((await ask(a, 'Spell cat backwards.', {}, { 'cache-control': 'no-cache' })).cache, 'miss');
    assert.equal(await completed(), engineBefore + 1, 'no-cache went to the engine');

    const storedNow = await metric('router_cache_stores_total', 'result="stored"');
    assert.equal((await ask(a, 'Spell dog backwards.', {}, { 'cache-control': 'no-store' })).cache, 'miss');
    assert.equal((await ask(a, 'Spell dog backwards.')).cache, 'miss', 'nothing was stored for no-store');
    await storedAtLeast(storedNow + 1); // the second one was stored
    assert.equal((await ask(a, 'Spell dog backwards.')).cache, 'hit');
  });

  it("never caches a sampled request, nor tools without the tenant's opt-in", async () => {
    const a = await newTenant();
    const engineBefore = await completed();
    const bypassBefore = await metric('router_cache_lookups_total', 'result="non_deterministic"');
    for (let i = 0; i < 2; i++) assert.equal((await ask(a, 'Tell me a joke.', { temperature: 0.8 })).cache, 'miss');
    assert.equal(await completed(), engineBefore + 2);
    assert.equal(await metric('router_cache_lookups_total', 'result="non_deterministic"'), bypassBefore + 2);

    const tools = [{ type: 'function', function: { name: 'send_email', parameters: { type: 'object', properties: {} } } }];
    for (let i = 0; i < 2; i++) assert.equal((await ask(a, 'Email Bob.', { tools })).cache, 'miss');
    assert.equal(await completed(), engineBefore + 4);

    // A tenant that opts in to tools gets them cached (seeded: deterministic without temperature 0).
    const optedIn = await newTenant({ cache: { allowTools: true } });
    const stored = await metric('router_cache_stores_total', 'result="stored"');
    assert.equal((await ask(optedIn, 'Email Bob.', { tools, temperature: 1, seed: 7 })).cache, 'miss');
    await storedAtLeast(stored + 1);
    assert.equal((await ask(optedIn, 'Email Bob.', { tools, temperature: 1, seed: 7 })).cache, 'hit');
  });

  it('per-alias switches and TTLs', async () => {
    const a = await newTenant();
    assert.equal((await ask(a, 'Name a prime.', { model: 'uncached' })).cache, null, 'no x-cache header when the alias has the cache off');
    const engineBefore = await completed();
    await ask(a, 'Name a prime.', { model: 'uncached' });
    assert.equal(await completed(), engineBefore + 1);

    const stored = await metric('router_cache_stores_total', 'result="stored"');
    assert.equal((await ask(a, 'Name an even prime.', { model: 'short-lived' })).cache, 'miss');
    await storedAtLeast(stored + 1);
    assert.equal((await ask(a, 'Name an even prime.', { model: 'short-lived' })).cache, 'hit');
    // Past the alias TTL (1 s) by 200 ms: a lower bound, so load can only make it later, never early.
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal((await ask(a, 'Name an even prime.', { model: 'short-lived' })).cache, 'miss', 'expired after the alias TTL of 1 s');
  });

  it('a tenant can switch the cache off', async () => {
    const off = await newTenant({ cache: { enabled: false } });
    const first = await ask(off, 'Name three primary colours.');
    assert.equal(first.cache, null, 'no x-cache header when the cache is off for the tenant');
    const engineBefore = await completed();
    await ask(off, 'Name three primary colours.');
    assert.equal(await completed(), engineBefore + 1);
  });
});
