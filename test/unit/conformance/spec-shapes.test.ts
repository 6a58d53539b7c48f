// The string-level conformance fixes of the router's relay (router/http/recorded-response.ts) and
// the visibility rules of GET /v1/models and /v1/models/{model} (router/http/models.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHttpServer } from '../../../common/http.ts';
import { errors } from '../../../common/errors.ts';
import { createLogger } from '../../../common/logger.ts';
import { modelsRoutes } from '../../../router/http/models.ts';
import { omitDisallowedNulls, withNullUsage } from '../../../router/http/recorded-response.ts';
import type { Scheduler } from '../../../router/scheduling/scheduler.ts';
import type { ModelResolver } from '../../../router/models/model-resolver.ts';

describe('withNullUsage', () => {
  it('adds "usage": null to a chunk without a usage key, and leaves others alone', () => {
    const chunk = '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}';
    assert.deepEqual(JSON.parse(withNullUsage(chunk)), { usage: null, ...(JSON.parse(chunk) as object) });
    assert.equal(withNullUsage('{}'), '{"usage":null}');
    const usageChunk = '{"id":"c1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}';
    assert.equal(withNullUsage(usageChunk), usageChunk);
    assert.equal(withNullUsage('{"usage":null,"id":"c"}'), '{"usage":null,"id":"c"}');
  });

  it('a content that spells "usage": is not a key', () => {
    const chunk = JSON.stringify({ id: 'c', choices: [{ delta: { content: 'my "usage": 5' } }] });
    const out = JSON.parse(withNullUsage(chunk)) as { usage?: unknown };
    assert.ok(Object.hasOwn(out, 'usage') && out.usage === null);
  });
});

describe('omitDisallowedNulls', () => {
  it('drops the nulls the spec does not allow, keeps allowed ones and every value', () => {
    const body = {
      id: 'x',
      choices: [{ message: { role: 'assistant', content: 'a', refusal: null, annotations: null, audio: null, function_call: null } }],
      system_fingerprint: null,
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, prompt_tokens_details: null },
    };
    assert.deepEqual(JSON.parse(omitDisallowedNulls(JSON.stringify(body))), {
      id: 'x',
      choices: [{ message: { role: 'assistant', content: 'a', refusal: null, audio: null } }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    });
    assert.deepEqual(JSON.parse(omitDisallowedNulls('{"system_fingerprint":null,"id":"y"}')), { id: 'y' });
    assert.deepEqual(JSON.parse(omitDisallowedNulls('{"a":{"annotations":null}}')), { a: {} });
    const set = JSON.stringify({ system_fingerprint: 'fp', annotations: [] });
    assert.equal(omitDisallowedNulls(set), set);
  });

  it('text that spells a dropped field stays as it is', () => {
    const body = JSON.stringify({ content: 'x,"system_fingerprint":null,y {"annotations":null}' });
    assert.equal(omitDisallowedNulls(body), body);
  });
});

describe('GET /v1/models and /v1/models/{model}', () => {
  const scheduler = { servedModels: () => new Set(['org/model-a', 'model-b']) } as unknown as Scheduler;
  const resolver = { servedAliases: () => ['alias-a'] } as unknown as ModelResolver;

  async function app(allowed?: readonly string[]) {
    const a = createHttpServer({ logger: createLogger('test', 'silent') });
    await a.register(modelsRoutes, {
      scheduler,
      resolver,
      statusStaleMs: 1_000,
      localModels: () => [{ id: 'embed-1', kind: 'embeddings' }],
      fallbackModels: () => [{ id: 'hosted-1', ownedBy: 'openai:gpt-4o-mini' }],
      allowedModelsOf: () => allowed,
    });
    return a;
  }

  it('every listed model is found by id (an id with a slash too), in the same shape; others are 404 model_not_found', async () => {
    const a = await app();
    const list = (await a.inject({ url: '/v1/models' })).json<{ data: { id: string }[] }>();
    assert.deepEqual(list.data.map((m) => m.id).sort(), ['alias-a', 'embed-1', 'hosted-1', 'model-b', 'org/model-a']);
    for (const m of list.data) assert.deepEqual((await a.inject({ url: `/v1/models/${m.id}` })).json(), m);
    for (const id of ['nope', 'constructor', '__proto__', 'org', 'org%2Fmodel-a%2F']) {
      const res = await a.inject({ url: `/v1/models/${id}` });
      assert.equal(res.statusCode, 404, id);
      assert.equal(res.json<{ error: { code: string } }>().error.code, 'model_not_found', id);
    }
    await a.close();
  });

  it('a caller limited by allowedModels sees and finds only those', async () => {
    const a = await app(['model-b', 'hosted-1']);
    const list = (await a.inject({ url: '/v1/models' })).json<{ data: { id: string }[] }>();
    assert.deepEqual(list.data.map((m) => m.id).sort(), ['hosted-1', 'model-b']);
    assert.equal((await a.inject({ url: '/v1/models/model-b' })).statusCode, 200);
    assert.equal((await a.inject({ url: '/v1/models/org/model-a' })).statusCode, 404);
    await a.close();
  });
});

describe('x-request-id on every answer of createHttpServer', () => {
  it('JSON, a thrown error, a hijacked stream, an unknown route and a framework error all carry it', async () => {
    const a = createHttpServer({ logger: createLogger('test', 'silent') });
    a.get('/json', async () => ({ ok: true }));
    a.get('/fail/:id', async () => {
      throw errors.invalidRequest('bad', 'field');
    });
    a.get('/stream', (_req, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
      reply.raw.end('data: [DONE]\n\n');
    });
    a.post('/body', async () => ({ ok: true }));
    const cases = [
      { url: '/json', status: 200 },
      { url: '/fail/1', status: 400 },
      { url: '/stream', status: 200 },
      { url: '/nowhere', status: 404 },
      { url: '/fail/%E0%A4%A', status: 400 },
    ];
    for (const c of cases) {
      const res = await a.inject({ url: c.url });
      assert.equal(res.statusCode, c.status, c.url);
      assert.match(String(res.headers['x-request-id']), /^req_[0-9a-f]{32}$/, c.url);
    }
    const bad = await a.inject({
      method: 'POST',
      url: '/body',
      headers: { 'content-type': 'application/json', 'x-request-id': 'mine-1' },
      payload: '{',
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.headers['x-request-id'], 'mine-1');
    await a.close();
  });
});
