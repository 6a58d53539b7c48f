// The chaos run's leak check finds a key, a token or the prompt marker anywhere in a line, names
// the secret by label, and never repeats the secret in its own report.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeakAudit, PROMPT_MARKER } from '../../chaos/secrets.ts';

describe('chaos leak audit', () => {
  it('finds every registered secret and the prompt marker, and redacts them in the report', () => {
    const audit = new LeakAudit();
    audit.addSecret('openai provider key', 'sk-test-openai-11112222');
    audit.addSecret('admin token', 'adm-token-33334444');
    audit.addLines('s router', [
      '{"level":30,"msg":"request","model":"m"}',
      '{"msg":"upstream said","err":"Incorrect API key sk-test-openai-11112222"}',
      `{"msg":"bad body","body":"${PROMPT_MARKER} tell me"}`,
    ]);
    audit.addLines('s control-plane', ['authorization: Bearer adm-token-33334444 and sk-test-openai-11112222']);
    const { hits, linesScanned, secrets } = audit.check();
    assert.equal(linesScanned, 4);
    assert.equal(secrets, 2);
    assert.deepEqual(hits.map((h) => `${h.source}: ${h.what}`).sort(), [
      's control-plane: admin token',
      's control-plane: openai provider key',
      's router: openai provider key',
      's router: prompt marker',
    ]);
    for (const h of hits) {
      assert.ok(
        !h.line.includes('sk-test-openai-11112222') && !h.line.includes('adm-token-33334444') && !h.line.includes(PROMPT_MARKER),
        h.line,
      );
    }
  });

  it('a clean run has no hits; a too-short secret is refused rather than matched by chance', () => {
    const audit = new LeakAudit();
    audit.addSecret('tenant key', 'icp_live_abcdefgh12345678');
    audit.addLines('s', ['{"msg":"ok","keyId":"key_1"}', 'router_requests_total{lane="critical"} 3']);
    assert.deepEqual(audit.check().hits, []);
    assert.throws(() => audit.addSecret('pin', '1234'));
  });
});
