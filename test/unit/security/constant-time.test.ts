// Secrets are compared in constant time: API key secrets by their SHA-256 with timingSafeEqual
// (common/api-keys.ts), the admin token by digest with timingSafeEqual
// (control-plane/api/admin.ts). A scan of the services' sources finds no ===/!== on anything
// named like a secret, so a new plain comparison fails here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hashSecret, issueKey, parseKey, secretMatches } from '../../../common/api-keys.ts';
import { REPO_ROOT } from '../../../cli/spawn-service.ts';
import { mintNodeToken, sha256Matcher, tokenMatcher, tokenSha256, verifyNodeToken } from '../../../common/credentials.ts';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

// Identifiers that hold a secret: tokens, keys, passwords, credentials, the Authorization header.
const SECRET = String.raw`[\w.]*(?:adminToken|[aA]piKey|[sS]ecret|[pP]assword|[cC]redential|[aA]uthorization|[bB]earer)\w*`;
const PLAIN_COMPARE = new RegExp(String.raw`${SECRET}\s*[!=]==?\s*(?!undefined|null|'|")[\w.'"\`]|[\w.)'"\`]\s*[!=]==?\s*${SECRET}`);

describe('constant-time secret comparison', () => {
  it('secretMatches accepts the right secret and refuses wrong ones of any length', () => {
    const k = issueKey();
    const parsed = parseKey(k.key)!;
    assert.equal(secretMatches(parsed.secret, k.hash), true);
    assert.equal(secretMatches(parsed.secret.slice(0, -1) + (parsed.secret.endsWith('A') ? 'B' : 'A'), k.hash), false);
    assert.equal(secretMatches('', k.hash), false);
    assert.equal(secretMatches(parsed.secret, 'abcd'), false, 'a stored hash of another length');
    assert.equal(hashSecret('x').length, 64);
  });

  it('the key and admin-token checks go through crypto.timingSafeEqual', () => {
    const apiKeys = readFileSync(join(REPO_ROOT, 'common/api-keys.ts'), 'utf8');
    assert.match(apiKeys, /export function secretMatches[\s\S]*?timingSafeEqual\(/);
    const credentials = readFileSync(join(REPO_ROOT, 'common/credentials.ts'), 'utf8');
    assert.match(credentials, /function digestMatcher[\s\S]*?timingSafeEqual\(digest\(/);
    const access = readFileSync(join(REPO_ROOT, 'control-plane/api/access.ts'), 'utf8');
    assert.match(access, /tokenMatcher\(c\.adminToken\)/, 'the control plane checks tokens through tokenMatcher');
    assert.match(access, /verifyNodeToken\(/);
    const router = readFileSync(join(REPO_ROOT, 'router/tenancy/key-directory.ts'), 'utf8');
    assert.match(router, /secretMatches\(/, 'the router verifies keys with secretMatches');
  });

  it('token, digest and node-token checks accept the right value and refuse near misses', () => {
    const admin = tokenMatcher('the-admin-token');
    assert.equal(admin('the-admin-token'), true);
    for (const wrong of ['the-admin-token ', 'the-admin-toke', '', 'x'.repeat(5_000)]) assert.equal(admin(wrong), false);
    assert.equal(tokenMatcher(undefined)('anything'), false, 'no token configured: nothing matches');
    const byDigest = sha256Matcher(tokenSha256('the-admin-token'));
    assert.equal(byDigest('the-admin-token'), true);
    assert.equal(byDigest('the-admin-tokenx'), false);
    assert.equal(sha256Matcher('not-hex')('the-admin-token'), false);
    const t = mintNodeToken('secret', 'gpu-a');
    assert.equal(verifyNodeToken('secret', t), 'gpu-a');
    assert.equal(verifyNodeToken('other-secret', t), undefined);
    assert.equal(verifyNodeToken('secret', t.replace('gpu-a', 'gpu-b')), undefined, 'the id is bound to the mac');
    assert.equal(verifyNodeToken('secret', `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`), undefined);
    assert.equal(verifyNodeToken(undefined, t), undefined);
  });

  it('no service source compares a secret with === or !==', () => {
    const offenders: string[] = [];
    for (const dir of ['router', 'control-plane', 'common', 'node-agent', 'cli']) {
      for (const file of sources(join(REPO_ROOT, dir))) {
        readFileSync(file, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (/^\s*(\/\/|\*)/.test(line)) return;
            if (PLAIN_COMPARE.test(line)) offenders.push(`${file.slice(REPO_ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
          });
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('the scan does catch a plain comparison (so the test above can fail)', () => {
    for (const line of [
      'if (token.adminToken === given) {',
      'return req.headers.authorization !== expected;',
      'if (apiKey == other)',
      'ok = provided === cfg.secret;',
    ])
      assert.ok(PLAIN_COMPARE.test(line), line);
    for (const line of ['if (apiKey === undefined)', "if (secret !== '')", 'if (tokens === 0)', 'const apiKeyHeader = x;'])
      assert.ok(!PLAIN_COMPARE.test(line), line);
  });
});
