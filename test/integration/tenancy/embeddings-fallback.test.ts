// Embeddings beyond the router's own embedders, with tenants on: a model no local embedder
// serves goes to its fallback chain (OpenAI's /v1/embeddings, Azure's deployment route, the next
// provider when one fails; a tenant that forbids hosted fallback gets the honest 503); GET
// /v1/models lists chain-only models with `owned_by` naming the backend; every embeddings
// request leaves a usage record with its tokens and cost; TPM is charged at admission from the
// local model's real tokenizer. Real control plane and router processes, provider simulator,
// the official openai SDK as the client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, waitFor, type Stack } from '../../helpers/stack.ts';

const PROVIDER_KEY = 'sk-test-embed-provider-7c1e0b9d';
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const LOCAL = 'glove-100d-embed';
const PRICE = { inputPerMTok: 1_000, outputPerMTok: 0 };

type Rec = {
  id: string;
  model: string;
  backend: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  outcome: string;
  tenantId: string;
};
type SimRequest = { api: string; path: string; model: string; status: number };

describe('embeddings: hosted fallback, model listing, usage records, tokenizer TPM', () => {
  let stack: Stack;
  const sim = () => stack.providerSims.get('prov')!.url;
  const simRequests = async () => ((await (await fetch(`${sim()}/sim/state`)).json()) as { requests: SimRequest[] }).requests;
  const faults = (f: object) =>
    fetch(`${sim()}/sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(f) });
  const admin = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  let keysIssued = 0;
  const newKey = async (policy: object) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name: `t${keysIssued}`, policy })) as { id: string };
    const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string };
    keysIssued += 1;
    await waitFor(
      async () =>
        (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= keysIssued,
      10_000,
      20,
    );
    return { tenantId: tenant.id, client: new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: k.key, maxRetries: 0 }) };
  };
  const records = async (tenantId: string, n: number): Promise<Rec[]> =>
    (await waitFor(
      async () => {
        const r = (await admin('GET', `/v1/admin/usage?tenant=${tenantId}`)) as { data: Rec[] };
        return r.data.length >= n ? r.data : undefined;
      },
      10_000,
      100,
    ))!;

  // The budget webhook receiver: fails its first call (HTTP 500), then accepts.
  const hooks: { at: number; status: number; body: { type: string; scope: string; kind: string; percent: number } }[] = [];
  const receiver = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const status = hooks.length === 0 ? 500 : 200;
      hooks.push({ at: performance.now(), status, body: JSON.parse(raw) as (typeof hooks)[number]['body'] });
      res.writeHead(status).end();
    });
  });

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/budget`;
    stack = await startStack({
      sims: [],
      agents: [],
      providerSims: [{ id: 'prov', apiKey: PROVIDER_KEY }],
      routerEnv: { ICP_TEST_PROVIDER_KEY: PROVIDER_KEY },
      router: ({ providerSims }) => ({
        auth: { mode: 'required' },
        // A loopback receiver: internal targets are refused unless allowed.
        budgets: { webhook: { url: hookUrl, retries: 3, timeoutMs: 2_000, allowPrivateTargets: true } },
        embeddings: {
          models: [
            {
              id: LOCAL,
              kind: 'embedding',
              path: 'models/glove-100d-embed/model.onnx',
              tokenizer: 'models/glove-100d-embed/tokenizer.json',
              output: 'sentence_embedding',
              maxLength: 256,
              workers: 1,
            },
          ],
        },
        catalog: { prices: { [LOCAL]: PRICE }, backendPrices: { 'openai:text-embedding-3-small': { inputPerMTok: 20, outputPerMTok: 0 } } },
        fallback: {
          providers: {
            openai: { kind: 'openai', baseUrl: `${providerSims.get('prov')!.url}/v1`, apiKeyEnv: 'ICP_TEST_PROVIDER_KEY' },
            azure: {
              kind: 'azure-openai',
              endpoint: providerSims.get('prov')!.url,
              deployments: { 'text-embedding-3-large': 'emb-large-dep' },
              apiKeyEnv: 'ICP_TEST_PROVIDER_KEY',
            },
          },
          chains: {
            'embed-small': ['local', 'openai:text-embedding-3-small'],
            'embed-large': ['azure:text-embedding-3-large'],
            'embed-either': ['openai:text-embedding-3-small', 'azure:text-embedding-3-large'],
          },
          breaker: { minRequests: 100 },
          retry: { maxAttempts: 1 },
        },
      }),
    });
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
    receiver.close();
  });

  it('GET /v1/models lists models only a fallback chain serves, owned_by naming its backend', async () => {
    const { client } = await newKey({});
    const models = new Map<string, string>();
    for await (const m of client.models.list()) models.set(m.id, m.owned_by);
    assert.equal(models.get('embed-small'), 'openai:text-embedding-3-small');
    assert.equal(models.get('embed-large'), 'azure:text-embedding-3-large');
    assert.equal(models.get(LOCAL), 'router-embedding');
  });

  it('OpenAI embeddings for a model no local embedder serves (SDK default base64, and float)', async () => {
    const { client } = await newKey({});
    const { data, response } = await client.embeddings
      .create({ model: 'embed-small', input: ['first text', 'second text'] })
      .withResponse();
    assert.equal(response.headers.get('x-backend'), 'openai:text-embedding-3-small');
    assert.equal(data.data.length, 2);
    assert.equal(data.data[1]!.index, 1);
    assert.equal(data.data[0]!.embedding.length, 8);
    assert.ok(data.data[0]!.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    assert.equal(data.model, 'text-embedding-3-small');
    assert.ok(data.usage.prompt_tokens > 0);
    const float = await client.embeddings.create({ model: 'embed-small', input: 'first text', encoding_format: 'float', dimensions: 4 });
    assert.equal(float.data[0]!.embedding.length, 4);
    assert.deepEqual(
      float.data[0]!.embedding.map((x) => Math.fround(x)),
      data.data[0]!.embedding.slice(0, 4).map((x) => Math.fround(x)),
    );
    const last = (await simRequests()).at(-1)!;
    assert.equal(last.api, 'openai');
    assert.equal(last.path, '/v1/embeddings');
  });

  it('Azure embeddings through the deployment route; a failing OpenAI moves on to Azure', async () => {
    const { client } = await newKey({});
    const { data, response } = await client.embeddings.create({ model: 'embed-large', input: 'hello' }).withResponse();
    assert.equal(response.headers.get('x-backend'), 'azure:text-embedding-3-large');
    assert.equal(data.data[0]!.embedding.length, 8);
    let last = (await simRequests()).at(-1)!;
    assert.deepEqual([last.api, last.path, last.model], ['azure', '/openai/deployments/emb-large-dep/embeddings', 'emb-large-dep']);

    await faults({ serverError: { count: 1, status: 500 } });
    const r = await client.embeddings.create({ model: 'embed-either', input: 'hello' }).withResponse();
    assert.equal(r.response.headers.get('x-backend'), 'azure:text-embedding-3-large');
    const reqs = await simRequests();
    last = reqs.at(-1)!;
    assert.equal(last.api, 'azure');
    assert.deepEqual([reqs.at(-2)!.api, reqs.at(-2)!.status], ['openai', 500]);
  });

  it('a tenant that forbids hosted fallback gets the honest 503 with Retry-After, and nothing leaves', async () => {
    const { client } = await newKey({ allowHostedFallback: false });
    const before = (await simRequests()).length;
    await assert.rejects(client.embeddings.create({ model: 'embed-small', input: 'secret text' }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 503);
      assert.ok(Number(e.headers?.get('retry-after')) >= 1);
      return true;
    });
    assert.equal((await simRequests()).length, before);
  });

  it("TPM is charged at admission from the local model's tokenizer (not an estimate, no max_tokens)", async () => {
    const { client } = await newKey({ tpm: 100_000 });
    // 40 words: the ~4 chars/token estimate says ~62, max_tokens' default would add 256.
    const text = Array.from({ length: 40 }, (_, i) => ['cat', 'dog', 'tree', 'house', 'river'][i % 5]).join(' ');
    const { data, response } = await client.embeddings.create({ model: LOCAL, input: text }).withResponse();
    const remaining = Number(response.headers.get('x-ratelimit-remaining-tokens'));
    assert.equal(response.headers.get('x-ratelimit-limit-tokens'), '100000');
    assert.equal(100_000 - remaining, data.usage.prompt_tokens, 'charged exactly the tokens the embedder counted');
  });

  it('embeddings get usage records with tokens and cost: local embedder and hosted provider', async () => {
    const { tenantId, client } = await newKey({});
    const local = await client.embeddings.create({ model: LOCAL, input: ['alpha beta gamma', 'delta'] });
    const hosted = await client.embeddings.create({ model: 'embed-small', input: 'alpha beta gamma' });
    const recs = await records(tenantId, 2);
    const byModel = new Map(recs.map((r) => [r.model, r]));
    const l = byModel.get(LOCAL)!;
    assert.deepEqual([l.backend, l.promptTokens, l.completionTokens, l.outcome], ['router', local.usage.prompt_tokens, 0, 'ok']);
    assert.ok(Math.abs(l.costUsd - (local.usage.prompt_tokens * PRICE.inputPerMTok) / 1e6) < 1e-12);
    const h = byModel.get('embed-small')!;
    assert.deepEqual([h.backend, h.promptTokens, h.outcome], ['openai:text-embedding-3-small', hosted.usage.prompt_tokens, 'ok']);
    assert.ok(Math.abs(h.costUsd - (hosted.usage.prompt_tokens * 20) / 1e6) < 1e-12);
  });

  it('budget webhook: a receiver that fails first gets the event again, with backoff, and accepts it', async () => {
    // Embedding tokens count toward the tenant's token budget: 6 words + [CLS]/[SEP] = 8 of 10, the 80% warning.
    const { tenantId, client } = await newKey({ monthlyTokenBudget: 10 });
    const r = await client.embeddings.create({ model: LOCAL, input: 'cat dog tree house river cat' });
    assert.equal(r.usage.prompt_tokens, 8);
    const got = (await waitFor(() => (hooks.length >= 2 ? hooks : undefined), 10_000, 50))!;
    assert.deepEqual(
      got.map((h) => h.status),
      [500, 200],
    );
    assert.deepEqual(got[1]!.body, got[0]!.body, 'the same event, retried');
    assert.equal(got[0]!.body.type, 'budget.warning');
    assert.equal(got[0]!.body.scope, `t:${tenantId}`);
    assert.equal(got[0]!.body.kind, 'tokens');
    assert.ok(got[1]!.at - got[0]!.at >= 200, 'the retry waited its backoff (250 ms)');
    // An absence check: the next retry would have come after the 250 ms backoff doubled (500 ms);
    // 1.5 s is three times that.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(hooks.length, 2, 'no retry after the receiver accepted');
  });
});
