// Issue 17, input hygiene: client input that names a member of Object.prototype (`constructor`,
// `__proto__`, `toString`, ...) once indexed plain objects in the router and answered 500. On a
// real stack (control plane, an agent in front of a simulated vLLM, a router with keys required,
// the GloVe embedder and reranker, batches), each such name is an ordinary answer:
// - as a model name: 404 model_not_found on chat, completions, embeddings and rerank, and in a batch item;
// - as a bearer token: 401;
// - as a lane (`x-priority-lane`): 400 naming the header.
// Aliases, canary splits, prices and lane caps are configured, so the lookups that used to find
// Object.prototype's members run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { adminApi, startStack, waitFor, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { spawnService } from '../../cli/spawn-service.ts';
import { PROTOTYPE_KEYS } from '../fuzz/generators.ts';

const ADMIN_TOKEN = 'proto-keys-admin-' + 'p'.repeat(32);

interface Answer {
  status: number;
  body: { error?: { message: string; type: string; param: string | null; code: string | null } };
}

describe('prototype member names as client input', () => {
  let stack: Stack;
  let dir: string;
  let key: string;
  let keyId: string;

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(stack.routerUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: Answer['body'];
    try {
      parsed = JSON.parse(text) as Answer['body'];
    } catch {
      assert.fail(`${path}: ${res.status} not JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, body: parsed };
  };
  const chatBody = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  const bodies: [string, (model: string) => unknown][] = [
    ['/v1/chat/completions', chatBody],
    ['/v1/completions', (model) => ({ model, prompt: 'hi', max_tokens: 2 })],
    ['/v1/embeddings', (model) => ({ model, input: 'hello world' })],
    ['/v1/rerank', (model) => ({ model, query: 'hello', documents: ['hello world', 'goodbye'] })],
  ];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icp-proto-keys-'));
    const tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, ADMIN_TOKEN);
    stack = await startStack({
      sims: [{ id: 'sim' }],
      agents: [{ id: 'gpu', sim: 'sim' }],
      controlPlane: { adminTokenFile: tokenFile },
      router: {
        auth: { mode: 'required' },
        aliases: { fast: DEFAULT_MODEL },
        catalog: {
          splits: { canary: [{ model: DEFAULT_MODEL, weight: 1 }] },
          prices: { [DEFAULT_MODEL]: { inputPerMTok: 1, outputPerMTok: 2 } },
        },
        embeddings: {
          models: [
            {
              id: 'glove-100d-embed',
              kind: 'embedding',
              path: 'models/glove-100d-embed/model.onnx',
              tokenizer: 'models/glove-100d-embed/tokenizer.json',
              output: 'sentence_embedding',
              maxLength: 256,
            },
            {
              id: 'glove-100d-rerank',
              kind: 'rerank',
              path: 'models/glove-100d-rerank/model.onnx',
              tokenizer: 'models/glove-100d-rerank/tokenizer.json',
              output: 'logits',
              maxLength: 256,
            },
          ],
        },
        // One attempt: a 5xx item would be dead-lettered at once instead of retried for minutes.
        batch: { maxAttempts: 1, pollMs: 50 },
      },
      routerEnv: { ICP_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    const adminCall = adminApi(() => stack.controlPlane!.url, ADMIN_TOKEN);
    const admin = (path: string, body: object) => adminCall('POST', path, body);
    const tenant = await admin('/v1/admin/tenants', { name: 'proto', policy: {} });
    const issued = await admin(`/v1/admin/tenants/${tenant.id as string}/keys`, { name: 'proto-key' });
    key = issued.key as string;
    keyId = issued.keyId as string;
    // The control (and the wait for the router to have the key and the node): a real model answers 200.
    await waitFor(async () => (await post('/v1/chat/completions', chatBody(DEFAULT_MODEL))).status === 200, 30_000, 100);
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves real names (the control): a model, an alias, a split, the embedder and the reranker', async () => {
    assert.ok(keyId);
    for (const model of [DEFAULT_MODEL, 'fast', 'canary'])
      assert.equal((await post('/v1/chat/completions', chatBody(model))).status, 200, model);
    assert.equal((await post('/v1/embeddings', { model: 'glove-100d-embed', input: 'hello' })).status, 200);
    assert.equal((await post('/v1/rerank', { model: 'glove-100d-rerank', query: 'a', documents: ['a b'] })).status, 200);
    assert.equal((await post('/v1/chat/completions', chatBody(DEFAULT_MODEL), { 'x-priority-lane': 'sheddable' })).status, 200);
  });

  it('answers each prototype member name as a model with 404 model_not_found, on every generation route', async () => {
    const wrong: string[] = [];
    for (const name of PROTOTYPE_KEYS)
      for (const [path, body] of bodies) {
        const a = await post(path, body(name));
        if (a.status !== 404 || a.body.error?.code !== 'model_not_found' || a.body.error.type !== 'invalid_request_error')
          wrong.push(`${path} model=${name}: ${a.status} ${JSON.stringify(a.body).slice(0, 160)}`);
      }
    assert.deepEqual(wrong, []);
  });

  it('answers each prototype member name as a bearer token with 401', async () => {
    const wrong: string[] = [];
    for (const name of PROTOTYPE_KEYS)
      for (const [path, body] of bodies) {
        const a = await post(path, body(DEFAULT_MODEL), { authorization: `Bearer ${name}` });
        if (a.status !== 401 || a.body.error?.type !== 'authentication_error')
          wrong.push(`${path} Bearer ${name}: ${a.status} ${JSON.stringify(a.body).slice(0, 160)}`);
      }
    assert.deepEqual(wrong, []);
  });

  it('with auth off, such bearer tokens are just strings: served at the default lane cap, never a 500', async () => {
    // The same config, keys off: the token is never verified, so it must not be looked up anywhere either.
    const all = parse(readFileSync(stack.configFile, 'utf8')) as { router: Record<string, unknown> };
    const file = join(dir, 'auth-off.yaml');
    writeFileSync(file, stringify({ ...all, router: { ...all.router, auth: { mode: 'off' }, lanes: { defaultMaxLane: 'standard' } } }));
    const open = await spawnService({
      name: 'router-auth-off',
      entry: 'cli/main.ts',
      args: ['router', '--config', file],
      env: { ICP_ROUTER_TOKEN: stack.credentials.routerToken },
      onLine: () => undefined,
    });
    try {
      // The canary split: with auth off its sticky key is the bearer token itself.
      const ask = (name: string) =>
        fetch(`${open.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${name}`, 'x-priority-lane': 'critical' },
          body: JSON.stringify(chatBody('canary')),
        });
      await waitFor(
        async () => {
          const r = await ask('warm-up');
          await r.arrayBuffer();
          return r.status === 200;
        },
        30_000,
        100,
      );
      const wrong: string[] = [];
      for (const name of PROTOTYPE_KEYS) {
        const res = await ask(name);
        const text = await res.text();
        if (res.status !== 200 || res.headers.get('x-priority-lane') !== 'standard')
          wrong.push(`Bearer ${name}: ${res.status} lane ${res.headers.get('x-priority-lane')} ${text.slice(0, 160)}`);
      }
      assert.deepEqual(wrong, []);
    } finally {
      await open.stop(5_000);
    }
  });

  it('answers each prototype member name as a lane with 400 naming the header', async () => {
    const wrong: string[] = [];
    for (const name of [...PROTOTYPE_KEYS, 'bogus'])
      for (const path of ['/v1/chat/completions', '/v1/completions']) {
        const a = await post(path, bodies.find(([p]) => p === path)![1](DEFAULT_MODEL), { 'x-priority-lane': name });
        if (a.status !== 400 || a.body.error?.param !== 'x-priority-lane' || a.body.error.type !== 'invalid_request_error')
          wrong.push(`${path} lane=${name}: ${a.status} ${JSON.stringify(a.body).slice(0, 160)}`);
      }
    assert.deepEqual(wrong, []);
  });

  it('answers each prototype member name as a batch item model with 404 model_not_found', async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
    const lines = PROTOTYPE_KEYS.map((name, i) =>
      JSON.stringify({ custom_id: `item-${i}`, method: 'POST', url: '/v1/chat/completions', body: chatBody(name) }),
    );
    const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'proto.jsonl'), purpose: 'batch' });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = (await waitFor(
      async () => {
        const b = await client.batches.retrieve(created.id);
        return b.status === 'completed' || b.status === 'failed' || b.status === 'expired' ? b : undefined;
      },
      60_000,
      200,
    ))!;
    assert.equal(done.status, 'completed');
    assert.equal(done.request_counts?.failed, PROTOTYPE_KEYS.length, JSON.stringify(done.request_counts));
    const text = await (await client.files.content(done.error_file_id!)).text();
    const results = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: Answer['body'] } | null });
    const wrong = results
      .filter((r) => r.response?.status_code !== 404 || r.response.body.error?.code !== 'model_not_found')
      .map((r) => `${r.custom_id}: ${JSON.stringify(r.response).slice(0, 160)}`);
    assert.deepEqual(wrong, []);
    assert.equal(results.length, PROTOTYPE_KEYS.length);
  });
});
