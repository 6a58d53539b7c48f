import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { prefixAffinity } from '../../../router/scheduling/scorers/prefix-affinity.ts';
import { PrefixIndex } from '../../../router/scheduling/prefix-index.ts';
import { analysePrompt, prefixHashes } from '../../../router/scheduling/prompt-prefix.ts';
import { buildProfile, DEFAULT_PROFILE } from '../../../router/scheduling/plugins.ts';
import { node } from './helpers.ts';

const system = 'You are a careful assistant for the ACME support team. '.repeat(40);

describe('prompt prefix', () => {
  it('hashes full blocks, chained: a shared prefix shares its leading hashes', () => {
    const a = prefixHashes(system + 'question one', 256);
    const b = prefixHashes(system + 'a different question entirely', 256);
    assert.equal(a.length, Math.floor((system.length + 12) / 256));
    assert.deepEqual(a.slice(0, 8), b.slice(0, 8));
    assert.notDeepEqual(prefixHashes('x'.repeat(512)), prefixHashes('y'.repeat(512)));
  });
  it("reads chat messages (a later turn extends the earlier turn's prefix)", () => {
    const t1 = analysePrompt({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: 'hi' },
      ],
    });
    const t2 = analysePrompt({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello! '.repeat(60) },
        { role: 'user', content: 'more' },
      ],
    });
    assert.ok(t1.promptTokens > 500);
    assert.deepEqual(t2.prefixHashes.slice(0, t1.prefixHashes.length), t1.prefixHashes);
  });
});

describe('prefix index', () => {
  it('matches leading blocks per node and is LRU-bounded', () => {
    const idx = new PrefixIndex(4);
    idx.record(['h1', 'h2', 'h3'], 'a');
    idx.record(['h1'], 'b');
    assert.deepEqual(
      [...idx.match(['h1', 'h2', 'h3', 'h4'])],
      [
        ['a', 3],
        ['b', 1],
      ],
    );
    idx.record(['x1', 'x2'], 'c');
    assert.equal(idx.size, 4);
    // h2 was the least recently used block (h1 was touched again by b's record).
    assert.deepEqual(
      [...idx.match(['h1', 'h2'])],
      [
        ['a', 1],
        ['b', 1],
      ],
    );
  });
});

describe('prefix-affinity scorer', () => {
  const req = (text: string) => ({ model: 'm', exclude: new Set<string>(), ...analysePrompt({ prompt: text }) });

  it('prefers the node that got the prefix before', () => {
    const s = prefixAffinity();
    const r = req(system + 'q1');
    s.onPicked(node('b'), r);
    const scores = s.scoreAll!([node('a'), node('b')], req(system + 'q2'));
    assert.equal(scores[0], 0);
    assert.ok(scores[1]! > 0.9);
  });

  it('yields when the holder is clearly more loaded (death-spiral guard)', () => {
    const s = prefixAffinity({ yieldFactor: 1, yieldSlackSeconds: 0.5 });
    s.onPicked(node('b'), req(system + 'q1'));
    const scores = s.scoreAll!([node('a', { ttft: 0.1 }), node('b', { ttft: 0.1, waiting: 20 })], req(system + 'q2'));
    assert.deepEqual(scores, [0, 0]);
    // Slightly busier holder keeps its affinity.
    const kept = s.scoreAll!([node('a', { ttft: 0.1 }), node('b', { ttft: 0.1, waiting: 2 })], req(system + 'q2'));
    assert.ok(kept[1]! > 0.9);
  });

  it('one hot prefix spreads over nodes instead of piling onto one (full profile, simulated load)', () => {
    const profile = buildProfile(DEFAULT_PROFILE, 2_000, () => 0);
    const waiting = new Map<string, number>([
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 0],
    ]);
    const picked = new Set<string>();
    for (let i = 0; i < 200; i++) {
      // Each pick adds one waiting request on that node; the nodes drain 1 per 4 arrivals each.
      const cands = [...waiting].map(([id, w]) => node(id, { ttft: 0.1, waiting: w }));
      const d = profile.schedule(cands, req(system + `q${i}`));
      waiting.set(d.node!.id, waiting.get(d.node!.id)! + 1);
      picked.add(d.node!.id);
      if (i % 4 === 3) for (const [id, w] of waiting) waiting.set(id, Math.max(0, w - 1));
    }
    const max = Math.max(...waiting.values());
    assert.ok(max < 20, `hot node queue ${max}: affinity piled up`);
    assert.ok(picked.size >= 2, 'the prefix spread over more than one node');
  });
});
