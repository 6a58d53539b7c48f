// Retrieval quality on SciFact (BEIR layout) through the router's own HTTP endpoints:
// nDCG@10 for embedding-only retrieval and for embedding top-50 + rerank, compared with the
// numbers in the models' SOURCE.md. The dataset is CC BY-NC: it is read in place, never copied.
// Usage: npx tsx test/bench/scifact-eval.ts [path/to/scifact]   (or SCIFACT_DIR; default ../shared/datasets/scifact)
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { ApiError } from '../../common/errors.ts';
import { EmbeddingService, defaultEmbeddingsConfig } from '../../router/embed/index.ts';
import { embeddingRoutes } from '../../router/http/embeddings.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = resolve(process.argv[2] ?? process.env.SCIFACT_DIR ?? resolve(ROOT, '../shared/datasets/scifact'));
const EXPECTED = { embed: 0.2367, rerank: 0.3433 };
const TOP_K = 50;
const CONCURRENCY = 4;

const jsonl = <T>(file: string): T[] =>
  readFileSync(resolve(DIR, file), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
const corpus = jsonl<{ _id: string; title: string; text: string }>('corpus.jsonl');
const queries = new Map(jsonl<{ _id: string; text: string }>('queries.jsonl').map((q) => [q._id, q.text]));
const qrels = new Map<string, Set<string>>();
for (const line of readFileSync(resolve(DIR, 'qrels/test.tsv'), 'utf8').split(/\r?\n/).slice(1)) {
  const [qid, did, score] = line.split('\t');
  if (!qid || !did || Number(score) <= 0) continue;
  if (!qrels.has(qid)) qrels.set(qid, new Set());
  qrels.get(qid)!.add(did);
}

/** Binary gains, log2 discounts. */
function ndcg10(ranked: string[], relevant: Set<string>): number {
  let dcg = 0;
  ranked.slice(0, 10).forEach((d, i) => {
    if (relevant.has(d)) dcg += 1 / Math.log2(i + 2);
  });
  let idcg = 0;
  for (let i = 0; i < Math.min(10, relevant.size); i++) idcg += 1 / Math.log2(i + 2);
  return dcg / idcg;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const service = await EmbeddingService.load(defaultEmbeddingsConfig(), { baseDir: ROOT });
const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });
app.setErrorHandler((err, _req, reply) =>
  err instanceof ApiError ? reply.status(err.status).send(err.toBody()) : reply.status(500).send({ error: { message: String(err) } }),
);
await app.register(embeddingRoutes, { service });
const url = await app.listen({ host: '127.0.0.1', port: 0 });

async function post<T>(path: string, body: unknown): Promise<T> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

type EmbResp = { data: { index: number; embedding: string }[] };
async function embed(texts: string[], inputType: 'query' | 'passage'): Promise<Float32Array[]> {
  const r = await post<EmbResp>('/v1/embeddings', {
    model: 'glove-100d-embed',
    input: texts,
    encoding_format: 'base64',
    input_type: inputType,
    truncate: true,
  });
  return r.data.sort((a, b) => a.index - b.index).map((d) => new Float32Array(new Uint8Array(Buffer.from(d.embedding, 'base64')).buffer));
}

try {
  const t0 = performance.now();
  const docText = corpus.map((d) => `${d.title} ${d.text}`);
  const docVecs: Float32Array[] = new Array(corpus.length);
  const chunks = Array.from({ length: Math.ceil(corpus.length / 64) }, (_, i) => i * 64);
  await pool(chunks, CONCURRENCY, async (start) => {
    const vs = await embed(docText.slice(start, start + 64), 'passage');
    vs.forEach((v, i) => {
      docVecs[start + i] = v;
    });
  });
  const tDocs = performance.now() - t0;

  const qids = [...qrels.keys()];
  const qVecs = await embed(
    qids.map((q) => queries.get(q)!),
    'query',
  );
  let sumEmbed = 0,
    sumRerank = 0,
    recall50 = 0;
  const t1 = performance.now();
  await pool(
    qids.map((q, i) => [q, i] as const),
    CONCURRENCY,
    async ([qid, i]) => {
      const q = qVecs[i]!;
      const scores = docVecs.map((d) => {
        let s = 0;
        for (let k = 0; k < q.length; k++) s += q[k]! * d[k]!;
        return s;
      });
      // Ties broken by corpus order.
      const order = scores.map((_, j) => j).sort((a, b) => scores[b]! - scores[a]! || a - b);
      const top = order.slice(0, TOP_K);
      const rel = qrels.get(qid)!;
      sumEmbed += ndcg10(
        order.slice(0, 10).map((j) => corpus[j]!._id),
        rel,
      );
      recall50 += top.filter((j) => rel.has(corpus[j]!._id)).length / rel.size;
      const rr = await post<{ results: { index: number }[] }>('/v1/rerank', {
        model: 'glove-100d-rerank',
        query: queries.get(qid)!,
        documents: top.map((j) => docText[j]!),
      });
      sumRerank += ndcg10(
        rr.results.map((r) => corpus[top[r.index]!]!._id),
        rel,
      );
    },
  );
  const tRerank = performance.now() - t1;
  const n = qids.length;
  const result = {
    queries: n,
    documents: corpus.length,
    ndcg10_embedding: +(sumEmbed / n).toFixed(4),
    ndcg10_embedding_rerank_top50: +(sumRerank / n).toFixed(4),
    recall50_embedding: +(recall50 / n).toFixed(3),
    expected: EXPECTED,
    seconds: { embed_corpus: +(tDocs / 1000).toFixed(1), rerank_all: +(tRerank / 1000).toFixed(1) },
  };
  console.log(JSON.stringify(result, null, 2));
  const ok =
    Math.abs(result.ndcg10_embedding - EXPECTED.embed) <= 5e-4 && Math.abs(result.ndcg10_embedding_rerank_top50 - EXPECTED.rerank) <= 5e-4;
  console.log(ok ? 'MATCHES SOURCE.md' : 'DIFFERS FROM SOURCE.md');
  process.exitCode = ok ? 0 : 1;
} finally {
  await app.close();
  await service.close();
}
