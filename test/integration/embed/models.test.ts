// The engine against the models' own reference outputs, and behaviour a user can check by eye.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { EmbeddingService } from '../../../router/embed/index.ts';
import { ROOT, cosine, loadService } from './helpers.ts';

const ref = (m: string) => JSON.parse(readFileSync(`${ROOT}models/${m}/reference.json`, 'utf8'));
const embedRef = ref('glove-100d-embed') as { single: { text: string; ids: number[]; sentence_embedding: number[] }[] };
const rerankRef = ref('glove-100d-rerank') as { pairs: { query: string; passage: string; ids: number[]; logit: number }[] };

const glove = { tokenizer: 'models/glove-100d-embed/tokenizer.json', maxLength: 256 };
let svc: EmbeddingService;

before(async () => {
  svc = await loadService({
    models: [
      { id: 'embed', kind: 'embedding', path: 'models/glove-100d-embed/model.onnx', output: 'sentence_embedding', ...glove },
      // The same graph read through its token vectors: the engine's own mean pooling + L2.
      {
        id: 'embed-pooled',
        kind: 'embedding',
        path: 'models/glove-100d-embed/model.onnx',
        output: 'last_hidden_state',
        pooling: 'mean',
        ...glove,
      },
      { id: 'rerank', kind: 'rerank', path: 'models/glove-100d-rerank/model.onnx', scoreActivation: 'identity', ...glove },
    ],
  });
});
after(() => svc?.close());

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

test('glove-100d-embed: sentence_embedding equals reference.json within 1e-5 (all 100 dims)', async () => {
  for (const s of embedRef.single) {
    const r = await svc.embed('embed', [s.text]);
    assert.ok(maxAbsDiff(r.embeddings[0]!, s.sentence_embedding) < 1e-5, s.text);
    assert.equal(r.promptTokens, s.ids.length);
  }
});

test('mean pooling of last_hidden_state + L2 gives the same vectors (pooling done by the engine)', async () => {
  const texts = embedRef.single.map((s) => s.text);
  const r = await svc.embed('embed-pooled', texts);
  r.embeddings.forEach((v, i) => assert.ok(maxAbsDiff(v, embedRef.single[i]!.sentence_embedding) < 1e-5));
});

test('glove-100d-rerank: logits equal reference.json within 1e-5', async () => {
  for (const p of rerankRef.pairs) {
    const r = await svc.rerank('rerank', p.query, [p.passage]);
    assert.ok(Math.abs(r.scores[0]! - p.logit) < 1e-5, `${p.passage}: ${r.scores[0]} vs ${p.logit}`);
    assert.equal(r.promptTokens, p.ids.length);
  }
});

test('batched and single requests give the same vectors and scores', async () => {
  const texts = [...embedRef.single.map((s) => s.text), 'short', 'a much longer sentence '.repeat(30)];
  const batched = await svc.embed('embed', texts);
  const singles = await Promise.all(texts.map((t) => svc.embed('embed', [t])));
  singles.forEach((s, i) => assert.ok(maxAbsDiff(s.embeddings[0]!, batched.embeddings[i]!) < 1e-6));
  const q = rerankRef.pairs[0]!.query;
  const docs = rerankRef.pairs.slice(0, 4).map((p) => p.passage);
  const rb = await svc.rerank('rerank', q, docs);
  for (const [i, d] of docs.entries()) assert.ok(Math.abs((await svc.rerank('rerank', q, [d])).scores[0]! - rb.scores[i]!) < 1e-5);
});

test('paraphrases score a higher cosine than unrelated sentences', async () => {
  const [cat, kitten, revenue, reset, steps] = (
    await svc.embed(
      'embed',
      embedRef.single.map((s) => s.text),
    )
  ).embeddings;
  assert.ok(cosine(cat!, kitten!) > cosine(cat!, revenue!));
  assert.ok(cosine(cat!, kitten!) > cosine(kitten!, reset!));
  assert.ok(cosine(reset!, steps!) > cosine(reset!, cat!));
  assert.ok(cosine(reset!, steps!) > cosine(steps!, revenue!));
});

test('the reranker puts the relevant passage first on hand-checked cases', async () => {
  const cases: { query: string; relevant: string; others: string[] }[] = [
    {
      query: 'When was the Eiffel Tower built?',
      relevant: 'The Eiffel Tower was completed in 1889 for the World Fair in Paris.',
      others: ['Paris is known for its cafes and museums.', 'Bananas are rich in potassium.'],
    },
    {
      query: 'How do I reset my router password?',
      relevant: 'Steps to change the admin password of a wifi router',
      others: ['The cat is sleeping on the warm windowsill.', 'Quarterly revenue grew by twelve percent in Europe.'],
    },
    {
      query: 'what do bananas contain',
      relevant: 'Bananas are rich in potassium and vitamin B6.',
      others: ['The stock market fell sharply on Monday.', 'The Eiffel Tower is in Paris.'],
    },
  ];
  for (const c of cases) {
    const r = await svc.rerank('rerank', c.query, [...c.others, c.relevant]);
    const best = r.scores.indexOf(Math.max(...r.scores));
    assert.equal(best, c.others.length, `${c.query}: ${r.scores}`);
  }
  // Reference order for the Eiffel query: 1, 3, 0, 2.
  const e = await svc.rerank(
    'rerank',
    rerankRef.pairs[0]!.query,
    rerankRef.pairs.slice(0, 4).map((p) => p.passage),
  );
  assert.deepEqual(
    e.scores.map((_, i) => i).sort((a, b) => e.scores[b]! - e.scores[a]!),
    [1, 3, 0, 2],
  );
});

test('unknown-only and empty texts give a zero vector, never NaN', async () => {
  const r = await svc.embed('embed', ['xyzzyq 1889']);
  assert.ok(r.embeddings[0]!.every((x) => x === 0));
});

test('a CUDA request without CUDA falls back to CPU with one warning', async () => {
  const warnings: object[] = [];
  const logger = { info: () => {}, warn: (o: object) => void warnings.push(o) };
  const { EmbeddingService } = await import('../../../router/embed/index.ts');
  const s = await EmbeddingService.load(
    { models: [{ id: 'e', kind: 'embedding', path: 'models/glove-100d-embed/model.onnx', executionProvider: 'cuda', ...glove }] },
    { baseDir: ROOT, logger },
  );
  try {
    assert.equal(s.modelInfo('e').provider, 'cpu');
    assert.equal(warnings.length, 1);
    assert.equal((await s.embed('e', ['hello'])).embeddings[0]!.length, 100);
  } finally {
    await s.close();
  }
});

test('a bad config fails at load with a clear message', async () => {
  await assert.rejects(
    loadService({ models: [{ id: 'x', kind: 'embedding', path: 'models/glove-100d-embed/model.onnx', output: 'nope', ...glove }] }),
    /no output 'nope'/,
  );
});

test('two workers, small batches: vectors, usage, prefixes and the too-long error are unchanged', async () => {
  const base = {
    kind: 'embedding' as const,
    path: 'models/glove-100d-embed/model.onnx',
    output: 'sentence_embedding',
    ...glove,
    workers: 2,
    maxBatch: 4,
    batchWindowMs: 0,
  };
  const s = await loadService({
    models: [
      { id: 'e2', ...base },
      { id: 'prefixed', ...base, queryPrefix: 'tower ', passagePrefix: 'bananas ' },
      {
        id: 'r2',
        kind: 'rerank',
        path: 'models/glove-100d-rerank/model.onnx',
        scoreActivation: 'identity',
        ...glove,
        workers: 2,
        maxBatch: 3,
      },
    ],
  });
  try {
    const texts = [...embedRef.single.map((x) => x.text), ...embedRef.single.map((x) => `${x.text} again`)];
    const r = await s.embed('e2', texts);
    const one = await svc.embed('embed', texts);
    r.embeddings.forEach((v, i) => assert.ok(maxAbsDiff(v, one.embeddings[i]!) < 1e-6));
    assert.equal(r.promptTokens, one.promptTokens);
    // Prefixes are applied before tokenizing (in the worker), and counted in usage.
    const q = await s.embed('prefixed', ['paris'], { inputType: 'query' });
    const p = await s.embed('prefixed', ['paris'], { inputType: 'passage' });
    assert.ok(maxAbsDiff(q.embeddings[0]!, (await s.embed('e2', ['tower paris'])).embeddings[0]!) < 1e-6);
    assert.ok(maxAbsDiff(p.embeddings[0]!, (await s.embed('e2', ['bananas paris'])).embeddings[0]!) < 1e-6);
    assert.equal(q.promptTokens, 4);
    // Several over-long inputs spread over batches: the error names the first one, with its count.
    const long = 'word '.repeat(300);
    await assert.rejects(s.embed('e2', ['ok', 'fine', 'short', 'more', long, 'x', 'word '.repeat(400), 'y']), (err: Error) => {
      assert.match(err.message, /maximum input length is 256 tokens, but input\[4\] has 302 tokens/);
      return true;
    });
    await assert.rejects(s.embed('e2', [long]), /but input has 302 tokens/);
    assert.equal((await s.embed('e2', [long], { truncate: true })).promptTokens, 256);
    // Rerank across workers: same scores as one at a time; over-long passages are cut, the query kept.
    const qtext = rerankRef.pairs[0]!.query;
    const docs = [...rerankRef.pairs.map((x) => x.passage), long];
    const rr = await s.rerank('r2', qtext, docs);
    for (const [i, d] of docs.entries()) assert.ok(Math.abs((await svc.rerank('rerank', qtext, [d])).scores[0]! - rr.scores[i]!) < 1e-5);
  } finally {
    await s.close();
  }
});
