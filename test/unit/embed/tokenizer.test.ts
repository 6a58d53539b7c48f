import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TextTokenizer, TooLongError } from '../../../router/embed/tokenizer.ts';

const models = fileURLToPath(new URL('../../../models/', import.meta.url));
const ref = (m: string) => JSON.parse(readFileSync(`${models}${m}/reference.json`, 'utf8'));
const load = (m: string) => TextTokenizer.load(`${models}${m}/tokenizer.json`);

interface Single {
  text: string;
  ids: number[];
  token_type_ids: number[];
}
interface Pair {
  query: string;
  passage: string;
  ids: number[];
  token_type_ids: number[];
}

test('all-MiniLM-L6-v2 tokenizer reproduces the reference ids', async () => {
  const tok = await load('all-MiniLM-L6-v2');
  const singles = ref('all-MiniLM-L6-v2').single as Single[];
  assert.equal(singles.length, 5);
  for (const s of singles) {
    const e = tok.encode(s.text, 512, false);
    assert.deepEqual(e.ids, s.ids, s.text);
    assert.deepEqual(e.typeIds, s.token_type_ids, s.text);
  }
});

test('ms-marco-MiniLM-L-12-v2 tokenizer reproduces the reference pair ids and type ids', async () => {
  const tok = await load('ms-marco-MiniLM-L-12-v2');
  const pairs = ref('ms-marco-MiniLM-L-12-v2').pairs as Pair[];
  assert.equal(pairs.length, 5);
  for (const p of pairs) {
    const e = tok.encodePair(tok.content(p.query), p.passage, 512);
    assert.deepEqual(e.ids, p.ids, p.passage);
    assert.deepEqual(e.typeIds, p.token_type_ids, p.passage);
  }
});

test('GloVe tokenizer (WordLevel through the config fallback) reproduces its reference ids', async () => {
  const tok = await load('glove-100d-embed');
  for (const s of ref('glove-100d-embed').single as Single[]) assert.deepEqual(tok.encode(s.text, 256, false).ids, s.ids);
  for (const p of ref('glove-100d-rerank').pairs as Pair[]) {
    const e = tok.encodePair(tok.content(p.query), p.passage, 256);
    assert.deepEqual(e.ids, p.ids);
    assert.deepEqual(e.typeIds, p.token_type_ids);
  }
  // Unknown words and numbers map to [UNK]=1, never undefined.
  assert.deepEqual(tok.encode('xyzzyq 1889 tower', 256, false).ids, [2, 1, 1, 2782, 3]);
});

test('single truncation keeps [CLS] ... [SEP] at exactly maxLength; without truncate it refuses', async () => {
  const tok = await load('all-MiniLM-L6-v2');
  const text = 'the cat sat on the mat '.repeat(40);
  const e = tok.encode(text, 16, true);
  assert.equal(e.ids.length, 16);
  assert.equal(e.ids[0], 101);
  assert.equal(e.ids[15], 102);
  assert.deepEqual(e.ids.slice(1, 15), tok.content(text).slice(0, 14));
  assert.throws(
    () => tok.encode(text, 16, false),
    (err: unknown) => err instanceof TooLongError && err.maxLength === 16 && err.tokens > 16,
  );
  assert.doesNotThrow(() => tok.encode('the cat', 16, false));
});

test('pair truncation cuts the passage, keeps the query and the final [SEP]', async () => {
  const tok = await load('ms-marco-MiniLM-L-12-v2');
  const [p] = ref('ms-marco-MiniLM-L-12-v2').pairs as Pair[];
  const q = tok.content(p!.query);
  const e = tok.encodePair(q, p!.passage, 20);
  assert.equal(e.ids.length, 20);
  // [CLS] query [SEP] are untouched, then the start of the passage, then [SEP].
  assert.deepEqual(e.ids.slice(0, q.length + 2), p!.ids.slice(0, q.length + 2));
  assert.deepEqual(e.ids.slice(q.length + 2, 19), p!.ids.slice(q.length + 2, 19));
  assert.equal(e.ids[19], 102);
  assert.deepEqual(e.typeIds, [...Array(q.length + 2).fill(0), ...Array(20 - q.length - 2).fill(1)]);
  // A query longer than the whole budget is cut too, never the special tokens.
  const long = tok.encodePair(tok.content('berlin '.repeat(50)), 'Berlin is big.', 20);
  assert.equal(long.ids.length, 20);
  assert.equal(long.ids.filter((id) => id === 102).length, 2);
});

test('an empty passage still gets the pair layout', async () => {
  const tok = await load('glove-100d-rerank');
  assert.deepEqual(tok.encodePair(tok.content('tower'), '', 256), { ids: [2, 2782, 3, 3], typeIds: [0, 0, 0, 1] });
});
