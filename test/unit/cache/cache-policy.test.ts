import { test } from 'node:test';
import assert from 'node:assert/strict';
import { narrow } from '../../../common/policy.ts';

test('a key narrows the tenant cache policy, never widens it', () => {
  assert.equal(narrow({}, {}).cache, undefined);
  assert.deepEqual(narrow({ cache: { allowTools: true, ttlSeconds: 600 } }, { cache: { ttlSeconds: 60, semantic: false } }).cache, {
    enabled: undefined,
    semantic: false,
    ttlSeconds: 60,
    allowTools: true,
    allowNonDeterministic: false,
  });
  assert.equal(
    narrow({}, { cache: { allowTools: true, allowNonDeterministic: true } }).cache?.allowTools,
    false,
    'only the tenant opts in',
  );
  assert.equal(narrow({ cache: { allowTools: true } }, { cache: { allowTools: false } }).cache?.allowTools, false);
  assert.equal(narrow({ cache: { enabled: false } }, { cache: { enabled: true } }).cache?.enabled, false);
});
