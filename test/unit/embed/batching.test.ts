import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildBatchInput, groupByLength } from '../../../router/embed/batch-input.ts';
import { clsPool, l2NormalizeRows, meanPool, truncateDimensions } from '../../../router/embed/pooling.ts';
import { embeddingsConfigSchema } from '../../../router/embed/config.ts';

test('buildBatchInput pads ids/mask/type ids with zeros to the longest sequence', () => {
  const b = buildBatchInput([
    { ids: [2, 10, 3], typeIds: [0, 0, 0] },
    { ids: [2, 11, 12, 13, 3], typeIds: [0, 0, 1, 1, 1] },
  ]);
  assert.equal(b.batch, 2);
  assert.equal(b.seq, 5);
  assert.deepEqual([...new BigInt64Array(b.inputIds)].map(Number), [2, 10, 3, 0, 0, 2, 11, 12, 13, 3]);
  assert.deepEqual([...new BigInt64Array(b.attentionMask)].map(Number), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual([...new BigInt64Array(b.tokenTypeIds)].map(Number), [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
});

test('groupByLength separates short inputs from long ones and keeps every index once', () => {
  const lengths = [10, 128, 12, 120, 11, 130, 9, 125, 14, 8];
  const groups = groupByLength(lengths);
  assert.deepEqual(
    groups.flat().sort((a, b) => a - b),
    lengths.map((_, i) => i),
  );
  assert.equal(groups.length, 2);
  for (const g of groups) {
    const ls = g.map((i) => lengths[i]!);
    assert.ok(Math.min(...ls) * 2 >= Math.max(...ls), `group ${ls} mixes lengths`);
  }
  // Small batches are not split: the per-call overhead would cost more than the padding.
  assert.equal(groupByLength([5, 200]).length, 1);
});

test('meanPool weights by the attention mask; clsPool takes the first token', () => {
  // batch 2, seq 3, hidden 2
  const data = Float32Array.from([1, 2, 3, 4, 100, 100, 5, 6, 7, 8, 9, 10]);
  const mask = BigInt64Array.from([1n, 1n, 0n, 1n, 1n, 1n]);
  assert.deepEqual([...meanPool(data, mask, 2, 3, 2)], [2, 3, 7, 8]);
  assert.deepEqual([...clsPool(data, 2, 3, 2)], [1, 2, 5, 6]);
});

test('l2 normalisation: unit rows, zero rows stay zero; Matryoshka truncation re-normalises', () => {
  const v = l2NormalizeRows(Float32Array.from([3, 4, 0, 0]), 2, 2);
  assert.deepEqual([...v], [0.6000000238418579, 0.800000011920929, 0, 0]);
  const t = truncateDimensions(Float32Array.from([3, 4, 12]), 2, true);
  assert.equal(t.length, 2);
  assert.ok(Math.abs(Math.hypot(t[0]!, t[1]!) - 1) < 1e-6);
});

test('config schema fills defaults and refuses duplicate ids', () => {
  const m = { id: 'e', kind: 'embedding', path: 'm.onnx', tokenizer: 't.json' };
  const cfg = embeddingsConfigSchema.parse({ models: [m] });
  assert.equal(cfg.models[0]!.pooling, 'mean');
  assert.equal(cfg.models[0]!.executionProvider, 'cpu');
  assert.equal(cfg.intraOpNumThreads, 1);
  assert.equal(embeddingsConfigSchema.safeParse({ models: [m, m] }).success, false);
  assert.equal(embeddingsConfigSchema.safeParse({ models: [{ ...m, pooling: 'max' }] }).success, false);
});
