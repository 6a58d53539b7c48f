import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheControl, canonicalJson, eligibility, exactKey, semanticParts } from '../../../router/cache/key.ts';
import { SemanticIndex } from '../../../router/cache/semantic-index.ts';

const scope = { tenant: 't:a', model: 'm', operation: 'CHAT_COMPLETIONS' };
const msgs = (q: string, system = 'Be brief.') => [
  { role: 'system', content: system },
  { role: 'user', content: q },
];

test('exact keys ignore delivery fields and key order, and separate tenants and models', () => {
  const a = exactKey(scope, { model: 'alias', messages: msgs('hi'), temperature: 0, max_tokens: 5 });
  const b = exactKey(scope, {
    max_tokens: 5,
    temperature: 0,
    messages: msgs('hi'),
    model: 'other-alias',
    stream: true,
    stream_options: { include_usage: true },
    user: 'u1',
  });
  assert.equal(a, b);
  assert.notEqual(a, exactKey({ ...scope, tenant: 't:b' }, { model: 'alias', messages: msgs('hi'), temperature: 0, max_tokens: 5 }));
  assert.notEqual(a, exactKey({ ...scope, model: 'm2' }, { model: 'alias', messages: msgs('hi'), temperature: 0, max_tokens: 5 }));
  assert.notEqual(a, exactKey(scope, { model: 'alias', messages: msgs('hi'), temperature: 0, max_tokens: 6 }));
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
});

test('only deterministic requests without tools are eligible, unless opted in', () => {
  const no = { tools: false, nonDeterministic: false };
  assert.equal(eligibility({ temperature: 0 }, no).ok, true);
  assert.equal(eligibility({ temperature: 1, seed: 3 }, no).ok, true);
  assert.deepEqual(eligibility({}, no), { ok: false, reason: 'non_deterministic' });
  assert.deepEqual(eligibility({ temperature: 0.2, seed: null }, no), { ok: false, reason: 'non_deterministic' });
  assert.deepEqual(eligibility({ temperature: 0, tools: [{ type: 'function' }] }, no), { ok: false, reason: 'tools' });
  assert.equal(eligibility({ temperature: 0, tools: [{ type: 'function' }] }, { tools: true, nonDeterministic: false }).ok, true);
  assert.equal(eligibility({ temperature: 0.7 }, { tools: false, nonDeterministic: true }).ok, true);
});

test('Cache-Control directives', () => {
  assert.deepEqual(cacheControl('No-Cache'), { noCache: true, noStore: false });
  assert.deepEqual(cacheControl('max-age=0, no-store'), { noCache: false, noStore: true });
  assert.deepEqual(cacheControl(undefined), { noCache: false, noStore: false });
});

test('semantic scope: the system prompt and earlier turns count, the last user message is the text', () => {
  const p = semanticParts(scope, { model: 'x', messages: msgs('What is up?'), temperature: 0 })!;
  assert.equal(p.text, 'What is up?');
  assert.equal(p.scopeKey, semanticParts(scope, { model: 'y', messages: msgs('Something else'), temperature: 0, stream: true })!.scopeKey);
  assert.notEqual(p.scopeKey, semanticParts(scope, { model: 'x', messages: msgs('What is up?', 'Be long.'), temperature: 0 })!.scopeKey);
  assert.notEqual(
    p.scopeKey,
    semanticParts({ ...scope, tenant: 't:b' }, { model: 'x', messages: msgs('What is up?'), temperature: 0 })!.scopeKey,
  );
  assert.notEqual(p.scopeKey, semanticParts(scope, { model: 'x', messages: msgs('What is up?'), temperature: 0, max_tokens: 9 })!.scopeKey);
  assert.equal(
    semanticParts(scope, {
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: 'a' },
      ],
    }),
    undefined,
    'must end with the user',
  );
  assert.equal(semanticParts(scope, { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }), undefined);
  assert.equal(semanticParts({ ...scope, operation: 'COMPLETIONS' }, { prompt: 'Once upon' })!.text, 'Once upon');
});

test('semantic index: threshold, scopes, TTL and bounds', () => {
  let now = 0;
  const idx = new SemanticIndex(3, 2, () => now);
  idx.add('s1', [1, 0], 'k1', 1_000);
  idx.add('s2', [1, 0], 'k2', 1_000);
  assert.deepEqual(
    idx.search('s1', [0.99, 0.14], 0.95).map((m) => m.key),
    ['k1'],
  );
  assert.deepEqual(idx.search('s1', [0, 1], 0.5), [], 'orthogonal: below any threshold');
  assert.deepEqual(idx.search('s3', [1, 0], 0), [], 'no entries of another scope');
  idx.add('s1', [0, 1], 'k3', 1_000);
  idx.add('s1', [0.7, 0.7], 'k4', 1_000); // s1 over its bound of 2: k1 goes
  assert.deepEqual(idx.search('s1', [1, 0], 0.9), []);
  assert.equal(idx.size, 3);
  idx.add('s3', [1, 0], 'k5', 1_000); // total over 3: the oldest (k2) goes
  assert.deepEqual(idx.search('s2', [1, 0], 0.9), []);
  now = 2_000;
  assert.deepEqual(idx.search('s3', [1, 0], 0.9), [], 'expired');
});
