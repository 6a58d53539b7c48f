// The memory idempotency store's bounds end to end (issue 17: every full answer was kept for 24 h
// with no cap): with a small `maxBytes`, older answers are evicted (counted in
// router_idempotency_evictions_total) and their keys run again, the newest still replay; an answer
// over `maxEntryBytes` is served, marked `idempotency-not-stored: too_large`, and not kept.
// Real simulator, agent, control plane and router processes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startStack, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';

describe('idempotency store bounds (one router, memory store)', () => {
  const stacks: Stack[] = [];
  const start = async (idempotency: object) => {
    const stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64', '--decode-step-ms', '1', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      withControlPlane: false,
      router: { admission: { enabled: false }, idempotency },
    });
    stacks.push(stack);
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
    return stack;
  };
  const chat = (stack: Stack, key: string, maxTokens = 4) =>
    fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: `answer for ${key}` }], max_tokens: maxTokens }),
    });
  const evictions = async (stack: Stack, reason: string) => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const m = text.match(new RegExp(`^router_idempotency_evictions_total\\{reason="${reason}"\\} (\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  };

  after(async () => {
    for (const s of stacks) await s.stop();
  });

  it('evicts the least recently used answers beyond maxBytes; evicted keys run again, recent ones replay', async () => {
    // About 1 KB per stored answer: 8 KiB hold a handful.
    const stack = await start({ maxBytes: 8 * 1024, maxTenantShare: 1 });
    const keys = Array.from({ length: 40 }, () => randomUUID());
    for (const k of keys) {
      const res = await chat(stack, k);
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(async () => (await evictions(stack, 'lru')) >= 20, 5_000);
    const completed = (await simState(stack.sims.get('a')!.url)).completed;
    const last = await chat(stack, keys.at(-1)!);
    assert.equal(last.headers.get('idempotent-replayed'), 'true', 'the newest answer is still stored');
    await last.text();
    const first = await chat(stack, keys[0]!);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('idempotent-replayed'), null, 'the oldest was evicted: generated again');
    await first.text();
    assert.equal((await simState(stack.sims.get('a')!.url)).completed - completed, 1);
  });

  it('an answer over maxEntryBytes is served, marked, and not stored', async () => {
    const stack = await start({ maxEntryBytes: 300 });
    const key = randomUUID();
    const res = await chat(stack, key, 40);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('idempotency-not-stored'), 'too_large');
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.ok(body.choices[0]!.message.content.length > 0);
    await waitFor(async () => (await evictions(stack, 'too_large')) === 1, 5_000);
    const again = await chat(stack, key, 40);
    assert.equal(again.headers.get('idempotent-replayed'), null, 'a repeat runs again');
    await again.text();
  });
});
