// Router answers against the official OpenAI OpenAPI schemas (vendored in
// test/fixtures/openai-openapi/, see SOURCE.md), on a real stack on loopback: a simulated vLLM
// engine, its agent, the control plane and the router, with the official `openai` SDK as client.
// Also the issue-18 conformance fixes: `x-request-id` on every answer, GET /v1/models/{model},
// and `"usage": null` on every chunk but the usage one under stream_options.include_usage.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import OpenAI from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const SCHEMAS = JSON.parse(readFileSync(new URL('../fixtures/openai-openapi/schemas.json', import.meta.url), 'utf8')) as {
  components: { schemas: Record<string, unknown> };
};

/**
 * The spec still marks some fields with OpenAPI 3.0's `nullable: true` (e.g. a stream chunk's
 * `usage`, a `$ref` with no `type`, which ajv refuses): read as JSON Schema, "this or null".
 */
function nullableToAnyOf(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullableToAnyOf);
  if (node === null || typeof node !== 'object') return node;
  const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, nullableToAnyOf(v)]));
  if (out.nullable !== true) return out;
  delete out.nullable;
  return { anyOf: [out, { type: 'null' }] };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
// The spec's own format for Unix timestamps (seconds).
ajv.addFormat('unixtime', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= 0 });
ajv.addSchema({ $id: 'openai', components: nullableToAnyOf(SCHEMAS.components) });

/** Every schema violation as `path: message`, empty when the value conforms. */
function violations(schemaName: string, value: unknown): string[] {
  const validate = ajv.getSchema(`openai#/components/schemas/${schemaName}`);
  assert.ok(validate, `no schema ${schemaName}`);
  if (validate(value)) return [];
  return (validate.errors ?? []).map(
    (e: ErrorObject) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  );
}

function assertConforms(schemaName: string, value: unknown): void {
  const v = violations(schemaName, value);
  assert.deepEqual(v, [], `${schemaName}: ${JSON.stringify(value)}`);
}

/** The `data:` payloads of an SSE body, `[DONE]` left out. */
function sseData(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((f) =>
      f
        .split('\n')
        .find((l) => l.startsWith('data: '))
        ?.slice(6),
    )
    .filter((d): d is string => d !== undefined && d !== '[DONE]')
    .map((d) => JSON.parse(d) as unknown);
}

describe('OpenAI spec conformance of router answers', () => {
  let stack: Stack;
  let client: OpenAI;
  const post = (path: string, body: unknown) =>
    fetch(`${stack.routerUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  before(async () => {
    stack = await startStack({ sims: [{ id: 'sim-a' }], agents: [{ id: 'gpu-a', sim: 'sim-a' }] });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  describe('x-request-id on every answer', () => {
    it('a chat completion: the header and the SDK _request_id, the client id kept when safe', async () => {
      const { data, response, request_id } = await client.chat.completions
        .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
        .withResponse();
      assert.equal(data.object, 'chat.completion');
      const id = response.headers.get('x-request-id');
      assert.match(id ?? '', /^req_[0-9a-f]{32}$/);
      assert.equal(request_id, id);
      const awaited = await client.chat.completions.create({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 2,
      });
      assert.match(awaited._request_id ?? '', /^req_[0-9a-f]{32}$/);
      const mine = await client.completions
        .create({ model: DEFAULT_MODEL, prompt: 'hi', max_tokens: 2 }, { headers: { 'x-request-id': 'client-id-1' } })
        .withResponse();
      assert.equal(mine.response.headers.get('x-request-id'), 'client-id-1');
    });

    it('models (list and by id), a stream, an error and an unknown route', async () => {
      const list = await client.models.list().withResponse();
      assert.ok(list.response.headers.get('x-request-id'));
      const one = await client.models.retrieve(DEFAULT_MODEL).withResponse();
      assert.ok(one.response.headers.get('x-request-id'));
      const stream = await client.chat.completions
        .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true })
        .withResponse();
      assert.ok(stream.response.headers.get('x-request-id'));
      for await (const chunk of stream.data) void chunk;
      const err = await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.match(err.requestID ?? '', /^req_/);
      const bad = await post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: 'not-a-list' });
      assert.equal(bad.status, 400);
      assert.ok(bad.headers.get('x-request-id'));
      const nowhere = await fetch(`${stack.routerUrl}/v1/nowhere`);
      assert.equal(nowhere.status, 404);
      assert.ok(nowhere.headers.get('x-request-id'));
    });
  });

  describe('GET /v1/models/{model}', () => {
    it('answers the Model object of a listed model, and 404 model_not_found for any other', async () => {
      const m = await client.models.retrieve(DEFAULT_MODEL);
      assert.equal(m.id, DEFAULT_MODEL);
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(m.owned_by, 'gpu-pool');
      const listed = (await client.models.list()).data.find((x) => x.id === DEFAULT_MODEL);
      assert.deepEqual({ ...m, _request_id: undefined }, { ...listed, _request_id: undefined });
      const err = await client.models.retrieve('no-such-model').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.code, 'model_not_found');
    });
  });

  describe('stream_options.include_usage', () => {
    for (const [path, body] of [
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Say hello' }] }],
      ['/v1/completions', { prompt: 'Say hello' }],
    ] as const) {
      it(`${path}: every chunk before the usage one has "usage": null, the last has the usage`, async () => {
        const res = await post(path, {
          model: DEFAULT_MODEL,
          ...body,
          max_tokens: 4,
          stream: true,
          stream_options: { include_usage: true },
        });
        assert.equal(res.status, 200);
        const chunks = sseData(await res.text()) as { usage?: unknown; choices: unknown[] }[];
        assert.ok(chunks.length >= 2, JSON.stringify(chunks));
        const last = chunks.at(-1)!;
        assert.deepEqual(last.choices, []);
        assert.equal((last.usage as { completion_tokens?: number }).completion_tokens, 4);
        for (const c of chunks.slice(0, -1)) assert.ok(Object.hasOwn(c, 'usage') && c.usage === null, JSON.stringify(c));
        // Without include_usage nothing changes: no usage key, no usage chunk.
        const plain = sseData(await (await post(path, { model: DEFAULT_MODEL, ...body, max_tokens: 4, stream: true })).text()) as object[];
        for (const c of plain) assert.ok(!Object.hasOwn(c, 'usage'), JSON.stringify(c));
      });
    }
  });

  describe('answers validate against the vendored schemas', () => {
    it('chat completion (non-streaming)', async () => {
      const res = await post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
      assert.equal(res.status, 200);
      assertConforms('CreateChatCompletionResponse', await res.json());
    });

    it('chat completion stream chunks (the usage chunk included)', async () => {
      const res = await post('/v1/chat/completions', {
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 3,
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = sseData(await res.text());
      assert.ok(chunks.length >= 2);
      for (const c of chunks) assertConforms('CreateChatCompletionStreamResponse', c);
    });

    it('completion (non-streaming)', async () => {
      const res = await post('/v1/completions', { model: DEFAULT_MODEL, prompt: 'hi', max_tokens: 3 });
      assert.equal(res.status, 200);
      assertConforms('CreateCompletionResponse', await res.json());
    });

    it('models list and model by id', async () => {
      assertConforms('ListModelsResponse', await (await fetch(`${stack.routerUrl}/v1/models`)).json());
      assertConforms('Model', await (await fetch(`${stack.routerUrl}/v1/models/${DEFAULT_MODEL}`)).json());
    });

    it('errors: 404 unknown model, 400 bad field, 404 unknown model id', async () => {
      for (const res of [
        await post('/v1/chat/completions', { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
        await post('/v1/chat/completions', { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 'x' }),
        await fetch(`${stack.routerUrl}/v1/models/no-such-model`),
      ]) {
        assert.ok(res.status >= 400 && res.status < 500, String(res.status));
        assertConforms('ErrorResponse', await res.json());
      }
    });

    it('the validator can fail: it names the field that does not conform', () => {
      assert.deepEqual(violations('Model', { id: 'x', object: 'model', created: 1, owned_by: 'o' }), []);
      const v = violations('Model', { id: 'x', object: 'model', created: 'yesterday', owned_by: 'o' });
      assert.ok(
        v.some((m) => m.startsWith('/created:')),
        v.join('\n'),
      );
    });
  });
});
