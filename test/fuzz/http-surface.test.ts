// Fuzz the router's HTTP surface with a few thousand generated bodies: every answer must be a
// 4xx in OpenAI's error shape, never a 5xx or a crash, and the router must still serve after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startStack, type Stack } from '../helpers/stack.ts';
import { FUZZ_SEED as SEED, PROTOTYPE_KEYS, fuzzCases, isOpenAIError, makeFuzz, rng, send } from './generators.ts';

const CASES = fuzzCases(3000);

function generator(r: () => number) {
  const { pick, value, body, headerValue, bearer } = makeFuzz(r);
  const chatLike = () => {
    const b: Record<string, unknown> = {
      model: pick(['no-such-model', 7, null, '', 'x'.repeat(300), ...PROTOTYPE_KEYS]),
      messages: pick([[{ role: 'user', content: 'hi' }], [], 'hi', [{ role: 'wizard', content: 'x' }], [{ content: 5 }], value(0)]),
    };
    for (const k of ['temperature', 'max_tokens', 'stream', 'stop', 'top_p', 'n', 'stream_options', 'seed', 'prompt'])
      if (r() < 0.3) b[k] = value(1);
    if (r() < 0.2) delete b.model;
    return b;
  };
  // Lane and bearer headers too: a lane or key name used as an object key must still be a plain 4xx.
  const headers = (): Record<string, string> => ({
    ...(r() < 0.3 ? { 'x-priority-lane': headerValue(['critical', 'standard', 'sheddable']) } : {}),
    ...(r() < 0.3 ? { authorization: bearer() } : {}),
  });
  return () => ({ path: pick(['/v1/chat/completions', '/v1/completions']), ...body(chatLike), headers: headers() });
}

describe('HTTP surface fuzz', () => {
  let stack: Stack;
  before(async () => {
    // A router with no nodes: every well-formed request is an honest 404 (unknown model).
    stack = await startStack({ sims: [], agents: [], withControlPlane: false });
  });
  after(async () => {
    await stack?.stop();
  });

  it(`answers ${CASES} generated bodies with 4xx in OpenAI's shape (seed ${SEED})`, async () => {
    const next = generator(rng(SEED));
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const c = next();
      const res = await send(stack.routerUrl, 'POST', c.path, c, c.headers);
      const text = res.text;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const ok = res.statusCode >= 400 && res.statusCode < 500 && isOpenAIError(text);
      if (!ok && failures.length < 5)
        failures.push(`case ${i}: ${res.statusCode} ${text.slice(0, 200)} for ${String(c.body).slice(0, 120)}`);
    }
    assert.deepEqual(failures, [], `statuses: ${JSON.stringify([...statuses])}`);
    // The router is still alive and serving.
    assert.equal(stack.router.child.exitCode, null);
    const health = await request(stack.routerUrl + '/healthz');
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    assert.ok((statuses.get(400) ?? 0) > CASES / 4, 'most generated bodies are invalid');
    assert.ok((statuses.get(404) ?? 0) > 0, 'some are well-formed: unknown model');
    assert.ok((statuses.get(413) ?? 0) > 0, 'oversized bodies are refused');
    assert.ok((statuses.get(415) ?? 0) > 0, 'wrong content types are refused');
  });
});
