// The routes over real HTTP on 127.0.0.1, with the official openai SDK where it applies.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import type { EmbeddingService } from '../../../router/embed/index.ts';
import { cosine, loadDefaultService, loadService, startApp } from './helpers.ts';

let svc: EmbeddingService;
let app: FastifyInstance;
let url: string;

before(async () => {
  svc = await loadDefaultService();
  ({ app, url } = await startApp(svc));
});
after(async () => {
  await app?.close();
  await svc?.close();
});

const post = async (path: string, body: unknown) => {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return {
    status: res.status,
    headers: res.headers,
    body: (await res.json()) as Record<string, unknown> & { error?: Record<string, unknown> },
  };
};

const client = () => new OpenAI({ apiKey: 'test', baseURL: `${url}/v1`, maxRetries: 0 });

test('openai SDK embeddings.create: float', async () => {
  const r = await client().embeddings.create({
    model: 'glove-100d-embed',
    input: ['The cat is sleeping.', 'A kitten naps.'],
    encoding_format: 'float',
  });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 2);
  assert.equal(r.data[1]!.index, 1);
  assert.equal(r.data[0]!.embedding.length, 100);
  assert.equal(r.model, 'glove-100d-embed');
  // [CLS] the cat is sleeping . [SEP] + [CLS] a kitten naps . [SEP]
  assert.equal(r.usage.prompt_tokens, 7 + 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
});

test('openai SDK embeddings.create: base64 (the SDK default) decodes to the same vectors', async () => {
  const input = 'How do I reset my router password?';
  const f = await client().embeddings.create({ model: 'glove-100d-embed', input, encoding_format: 'float' });
  // Without encoding_format the SDK asks for base64 and decodes it itself.
  const b = await client().embeddings.create({ model: 'glove-100d-embed', input });
  assert.equal(b.data[0]!.embedding.length, 100);
  assert.ok(cosine(f.data[0]!.embedding, b.data[0]!.embedding) > 0.999999);
  assert.deepEqual(b.data[0]!.embedding, f.data[0]!.embedding);
  // Raw base64 on the wire is little-endian float32.
  const raw = await post('/v1/embeddings', { model: 'glove-100d-embed', input, encoding_format: 'base64' });
  const b64 = (raw.body.data as { embedding: string }[])[0]!.embedding;
  const buf = Buffer.from(b64, 'base64');
  assert.equal(buf.length, 400);
  assert.equal(buf.readFloatLE(0), f.data[0]!.embedding[0]);
});

test('openai SDK surfaces our errors: unknown model is a 404 model_not_found', async () => {
  await assert.rejects(client().embeddings.create({ model: 'nope', input: 'x' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.NotFoundError);
    assert.equal(err.code, 'model_not_found');
    return true;
  });
});

test('bad embeddings inputs get 400s in OpenAI error shape', async () => {
  const cases: [unknown, RegExp][] = [
    [{ model: 'glove-100d-embed', input: [] }, /empty/],
    [{ model: 'glove-100d-embed', input: '' }, /empty/],
    [{ model: 'glove-100d-embed', input: Array(2049).fill('x') }, /maximum/],
    [{ model: 'glove-100d-embed', input: 'word '.repeat(300) }, /maximum input length is 256 tokens/],
    [{ model: 'glove-100d-embed', input: ['ok', 42 as unknown as string, 'x'] }, /Token-id/],
    [{ model: 'glove-100d-embed', input: [[1, 2, 3]] }, /Token-id/],
    [{ model: 'glove-100d-embed', input: [{ text: 'x' }] }, /must be a string/],
    [{ model: 'glove-100d-embed' }, /required/],
    [{ input: 'x' }, /model/],
    [{ model: 'glove-100d-embed', input: 'x', encoding_format: 'int8' }, /encoding_format/],
    [{ model: 'glove-100d-embed', input: 'x', dimensions: 64 }, /dimensions/],
    [{ model: 'glove-100d-rerank', input: 'x' }, /rerank model/],
  ];
  for (const [body, msg] of cases) {
    const r = await post('/v1/embeddings', body);
    assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    assert.equal(r.body.error?.type, 'invalid_request_error');
    assert.match(String(r.body.error?.message), msg);
    assert.ok('param' in r.body.error! && 'code' in r.body.error!);
  }
  const r = await post('/v1/embeddings', { model: 'missing', input: 'x' });
  assert.equal(r.status, 404);
  assert.equal(r.body.error?.code, 'model_not_found');
});

test('truncate: true embeds an over-long input; dimensions equal to the native width is fine', async () => {
  const r = await post('/v1/embeddings', { model: 'glove-100d-embed', input: 'word '.repeat(300), truncate: true, dimensions: 100 });
  assert.equal(r.status, 200);
  assert.equal((r.body.usage as { prompt_tokens: number }).prompt_tokens, 256);
});

test('/v1/rerank: Cohere/Jina shape, sorted, top_n, return_documents, usage', async () => {
  const documents = [
    'Paris is known for its cafes and museums.',
    { text: 'The Eiffel Tower was completed in 1889 for the World Fair in Paris.' },
    'Bananas are rich in potassium.',
  ];
  const r = await post('/v1/rerank', {
    model: 'glove-100d-rerank',
    query: 'When was the Eiffel Tower built?',
    documents,
    top_n: 2,
    return_documents: true,
  });
  assert.equal(r.status, 200);
  const results = r.body.results as { index: number; relevance_score: number; document?: { text: string } }[];
  assert.deepEqual(
    results.map((x) => x.index),
    [1, 0],
  );
  assert.ok(results[0]!.relevance_score > results[1]!.relevance_score);
  assert.ok(results[0]!.relevance_score > 0 && results[0]!.relevance_score < 1);
  assert.equal(results[0]!.document?.text, (documents[1] as { text: string }).text);
  assert.ok((r.body.usage as { prompt_tokens: number }).prompt_tokens > 0);
  const plain = await post('/v1/rerank', { model: 'glove-100d-rerank', query: 'tower', documents: ['bananas', 'tower'] });
  assert.deepEqual(
    (plain.body.results as { index: number; document?: unknown }[]).map((x) => [x.index, x.document]),
    [
      [1, undefined],
      [0, undefined],
    ],
  );
});

test('/v1/rerank bad inputs: 400s and 404', async () => {
  const cases: unknown[] = [
    { model: 'glove-100d-rerank', query: 'q', documents: [] },
    { model: 'glove-100d-rerank', query: '', documents: ['a'] },
    { model: 'glove-100d-rerank', query: 'q', documents: [1] },
    { model: 'glove-100d-rerank', query: 'q', documents: ['a'], top_n: 0 },
    { model: 'glove-100d-rerank', documents: ['a'] },
    { model: 'glove-100d-embed', query: 'q', documents: ['a'] },
  ];
  for (const body of cases) assert.equal((await post('/v1/rerank', body)).status, 400, JSON.stringify(body));
  assert.equal((await post('/v1/rerank', { model: 'x', query: 'q', documents: ['a'] })).body.error?.code, 'model_not_found');
});

test("TEI's /rerank shape: bare sorted array, raw_scores and return_text", async () => {
  const r = await fetch(`${url}/rerank`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'tower', texts: ['bananas', 'tower'], raw_scores: true, return_text: true }),
  });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { index: number; score: number; text: string }[];
  assert.deepEqual(
    body.map((x) => x.index),
    [1, 0],
  );
  assert.ok(Math.abs(body[0]!.score - 5) < 1e-5); // ('tower', 'tower') is the top logit, 5
  assert.equal(body[0]!.text, 'tower');
});

test('a full queue answers 429 with Retry-After, and the service recovers', async () => {
  const small = await loadService({
    models: [
      {
        id: 'tiny-queue',
        kind: 'embedding',
        path: 'models/glove-100d-embed/model.onnx',
        tokenizer: 'models/glove-100d-embed/tokenizer.json',
        maxLength: 256,
        maxBatch: 1,
        maxQueue: 8,
      },
    ],
  });
  const s = await startApp(small);
  try {
    const big = fetch(`${s.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-queue', input: Array.from({ length: 400 }, (_, i) => `sentence number ${i} `.repeat(20)) }),
    });
    // Let the big request reach the queue first.
    while (small.queueDepth('tiny-queue') === 0) await new Promise((r) => setTimeout(r, 1));
    const r = await fetch(`${s.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-queue', input: 'hi' }),
    });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    const body = (await r.json()) as { error: { type: string; code: string } };
    assert.equal(body.error.type, 'rate_limit_error');
    assert.equal((await big).status, 200);
    const again = await fetch(`${s.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-queue', input: 'hi' }),
    });
    assert.equal(again.status, 200);
  } finally {
    await s.app.close();
    await small.close();
  }
});

test('listModels reports both kinds', () => {
  assert.deepEqual(svc.listModels(), [
    { id: 'glove-100d-embed', kind: 'embedding' },
    { id: 'glove-100d-rerank', kind: 'rerank' },
  ]);
});
