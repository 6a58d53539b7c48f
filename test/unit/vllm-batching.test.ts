// The simulator's continuous-batching model, driven step by step on a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchingEngine, type EngineConfig, type SubmitRequest } from '../../test/sim/vllm/batching.ts';
import { planOutput } from '../../test/sim/vllm/text.ts';

const BASE: EngineConfig = {
  maxNumSeqs: 4,
  kvCacheTokens: 1024,
  blockSize: 16,
  prefillMsPerToken: 0,
  decodeStepMs: 10,
  decodeStepMsPerSeq: 1,
  speed: 1,
  slowdown: 1,
};

function setup(cfg: Partial<EngineConfig> = {}) {
  let t = 0;
  const engine = new BatchingEngine({ ...BASE, ...cfg }, () => t);
  const out = new Map<string, { tokens: string[]; finish: string | null }>();
  const submit = (id: string, promptTokens: number, naturalTokens = 1000, maxTokens = 1000, extra: Partial<SubmitRequest> = {}) => {
    const rec = { tokens: [] as string[], finish: null as string | null };
    out.set(id, rec);
    let i = 0;
    engine.submit({
      id,
      promptTokens,
      naturalTokens,
      maxTokens,
      prefixHashes: [],
      nextWord: () => `w${i++}`,
      listener: {
        onToken: (_idx, text, finish) => {
          rec.tokens.push(text);
          rec.finish = finish;
        },
      },
      ...extra,
    });
  };
  /** one step; the clock advances by its duration */
  const step = () => {
    const d = engine.beginStep();
    if (d !== null) {
      t += d;
      engine.endStep();
    }
    return d;
  };
  return { engine, out, submit, step, now: () => t };
}

test('admission is limited by maxNumSeqs; the rest wait', () => {
  const { engine, submit, step } = setup({ maxNumSeqs: 2 });
  for (const id of ['a', 'b', 'c']) submit(id, 10);
  step();
  assert.deepEqual(engine.runningIds(), ['a', 'b']);
  assert.deepEqual(engine.waitingIds(), ['c']);
  assert.equal(engine.state().running, 2);
  assert.equal(engine.state().waiting, 1);
});

test('admission is limited by KV capacity (blocks of the prompt)', () => {
  // 4 blocks of 16 tokens; each prompt of 40 tokens needs ceil(41/16) = 3 blocks
  const { engine, submit, step } = setup({ kvCacheTokens: 64, maxNumSeqs: 8 });
  submit('a', 40);
  submit('b', 40);
  step();
  assert.deepEqual(engine.runningIds(), ['a']);
  assert.deepEqual(engine.waitingIds(), ['b']);
  assert.equal(engine.state().kvCacheUsedTokens, 48);
  assert.equal(engine.state().kvCacheCapacityTokens, 64);
});

test('FIFO: a large request at the head is not overtaken by a small one behind it', () => {
  const { engine, submit, step } = setup({ kvCacheTokens: 64, maxNumSeqs: 8 });
  submit('a', 30, 2); // 2 blocks, finishes after 2 tokens
  submit('big', 40); // 3 blocks: does not fit next to 'a'
  submit('small', 5); // 1 block: would fit, but must wait behind 'big'
  step();
  assert.deepEqual(engine.runningIds(), ['a']);
  assert.deepEqual(engine.waitingIds(), ['big', 'small']);
  step(); // 'a' finishes
  step();
  assert.deepEqual(engine.runningIds(), ['big', 'small'], 'admitted in arrival order once the head fits');
});

test('a request that can never fit the KV cache is refused at submit; output is capped to fit', () => {
  const { submit, step, out } = setup({ kvCacheTokens: 64 });
  assert.throws(() => submit('huge', 100), /exceeds the KV cache/);
  submit('long', 40, 1000, 1000);
  for (let i = 0; i < 100; i++) step();
  assert.equal(out.get('long')!.finish, 'length');
  assert.equal(out.get('long')!.tokens.length, 64 - 40 - 1);
});

test('KV pressure preempts the most recently admitted sequence, which goes back to the front of the queue', () => {
  // 6 blocks. 15-token prompts -> 1 block each at admission; each grows by a block every 16
  // tokens and ends at 15 + 40 tokens = 4 blocks: three of them cannot all fit.
  const { engine, submit, step, out } = setup({ kvCacheTokens: 96, maxNumSeqs: 8 });
  submit('a', 15, 40);
  submit('b', 15, 40);
  submit('c', 15, 40);
  step();
  assert.deepEqual(engine.runningIds(), ['a', 'b', 'c']);
  let preemptedAt = -1;
  for (let i = 0; i < 40 && preemptedAt < 0; i++) {
    step();
    if (engine.state().preemptions > 0) preemptedAt = i;
  }
  assert.ok(preemptedAt >= 0, 'expected a preemption');
  assert.equal(engine.waitingIds()[0], 'c', 'the newest is the victim, queued at the front');
  assert.deepEqual(engine.runningIds(), ['a', 'b']);
  // Recompute keeps what it already generated: no duplicate tokens after readmission.
  const before = out.get('c')!.tokens.length;
  for (let i = 0; i < 200 && engine.hasWork(); i++) step();
  const c = out.get('c')!.tokens;
  assert.ok(c.length > before);
  assert.equal(c.length, 40);
  assert.deepEqual(
    c.slice(0, 39),
    Array.from({ length: 39 }, (_, i) => `w${i}`),
  );
  assert.equal(out.get('c')!.finish, 'stop');
  assert.equal(engine.state().completed, 3);
  assert.equal(engine.state().kvCacheUsedTokens, 0);
});

test('a preempted sequence pays its recompute prefill when readmitted', () => {
  const { engine, submit, step } = setup({
    kvCacheTokens: 64,
    maxNumSeqs: 8,
    prefillMsPerToken: 1,
    decodeStepMs: 0,
    decodeStepMsPerSeq: 0,
  });
  submit('a', 10, 1000, 1000);
  submit('b', 10, 1000, 1000);
  assert.equal(step(), 20); // both prefills: 10 + 10 tokens
  let d: number | null = 0;
  for (let i = 0; i < 100 && engine.state().preemptions === 0; i++) d = step();
  assert.equal(engine.state().preemptions, 1);
  assert.equal(d, 0, 'the preempting step admits nothing');
  for (let i = 0; i < 100; i++) {
    d = step();
    if (d !== null && d > 0) break;
  }
  assert.ok(d !== null && d > 10, `readmission recomputes prompt + generated tokens, got ${d}`);
});

test('decode step time grows with the batch size', () => {
  const { submit, step } = setup({ maxNumSeqs: 8 });
  submit('a', 10);
  const one = step()!;
  submit('b', 10);
  submit('c', 10);
  step(); // admits b and c
  const three = step()!;
  assert.equal(one, 10 + 1 * 1);
  assert.equal(three, 10 + 3 * 1);
});

test('prefill cost is added to the step that admits the sequence', () => {
  const { submit, step } = setup({ prefillMsPerToken: 0.5 });
  submit('a', 100);
  assert.equal(step(), 100 * 0.5 + 10 + 1);
  assert.equal(step(), 10 + 1);
});

test('speed factor and slowdown scale the step time', () => {
  const fast = setup({ speed: 2 });
  fast.submit('a', 10);
  assert.equal(fast.step(), 11 / 2);
  const slow = setup({ slowdown: 10 });
  slow.submit('a', 10);
  assert.equal(slow.step(), 110);
  slow.engine.config.slowdown = 1; // live change, as the brownout fault does
  assert.equal(slow.step(), 11);
});

test('finish reasons: stop at the natural length (EOS, empty text), length at max_tokens', () => {
  const { submit, step, out, engine } = setup();
  submit('natural', 10, 3, 100);
  submit('capped', 10, 100, 2);
  for (let i = 0; i < 5; i++) step();
  assert.deepEqual(out.get('natural'), { tokens: ['w0', 'w1', ''], finish: 'stop' });
  assert.deepEqual(out.get('capped'), { tokens: ['w0', 'w1'], finish: 'length' });
  assert.equal(engine.state().completed, 2);
  assert.equal(engine.state().kvCacheUsedTokens, 0, 'finished sequences free their blocks');
});

test('abort frees the slot and KV blocks at once, and the next waiting sequence is admitted', () => {
  const { engine, submit, step } = setup({ maxNumSeqs: 1 });
  submit('a', 10);
  submit('b', 10);
  step();
  assert.deepEqual(engine.runningIds(), ['a']);
  assert.ok(engine.abort('a'));
  assert.equal(engine.state().running, 0);
  assert.equal(engine.state().kvCacheUsedTokens, 0);
  assert.equal(engine.state().aborted, 1);
  step();
  assert.deepEqual(engine.runningIds(), ['b']);
  assert.equal(engine.abort('nope'), false);
});

test('abort between beginStep and endStep: the aborted sequence gets no token', () => {
  const { engine, submit, out } = setup();
  submit('a', 10);
  submit('b', 10);
  assert.notEqual(engine.beginStep(), null);
  engine.abort('a');
  engine.endStep();
  assert.equal(out.get('a')!.tokens.length, 0);
  assert.equal(out.get('b')!.tokens.length, 1);
});

test('prefix cache counts queries and hits in tokens over full leading blocks', () => {
  const { engine, submit, step } = setup({ prefillMsPerToken: 1 });
  submit('a', 40, 2, 2, { prefixHashes: ['h0', 'h1'] });
  assert.equal(step(), 40 + 11);
  submit('b', 40, 2, 2, { prefixHashes: ['h0', 'h1'] });
  submit('c', 40, 2, 2, { prefixHashes: ['x0', 'h1'] }); // different first block: no hit at all
  step();
  assert.equal(engine.counters.prefixQueries, 120);
  assert.equal(engine.counters.prefixHits, 32);
});

test('seeded output is deterministic: same seed + prompt -> same words and length', () => {
  const words = (seed: number, prompt: string) => {
    const p = planOutput(seed, prompt);
    return [p.naturalTokens, ...Array.from({ length: 20 }, () => p.nextWord())].join('|');
  };
  assert.equal(words(7, 'hello'), words(7, 'hello'));
  assert.notEqual(words(7, 'hello'), words(8, 'hello'));
  assert.notEqual(words(7, 'hello'), words(7, 'hullo'));
});

test('tiny fixed latency configuration (benchmark): sub-millisecond steps, no prefill cost', () => {
  const { submit, step } = setup({ decodeStepMs: 0.2, decodeStepMsPerSeq: 0, prefillMsPerToken: 0 });
  submit('a', 500);
  assert.equal(step(), 0.2);
});

test('idle engine: beginStep returns null', () => {
  const { engine } = setup();
  assert.equal(engine.beginStep(), null);
  assert.equal(engine.hasWork(), false);
});

test('prefix caching: a cached prefix skips its prefill and its blocks are shared, not copied', () => {
  const { engine, submit, step } = setup({ prefillMsPerToken: 1, kvCacheTokens: 1024, maxNumSeqs: 8 });
  const prefix = ['p0', 'p1', 'p2', 'p3']; // 64 tokens in 4 full blocks
  submit('a', 70, 100, 100, { prefixHashes: prefix });
  assert.equal(step(), 70 + 11, 'first sequence computes the whole prompt');
  assert.equal(engine.state().kvCacheUsedTokens, 5 * 16);
  submit('b', 70, 100, 100, { prefixHashes: prefix });
  assert.equal(step(), 6 + 12, 'second one prefills only the 6 tokens after the cached 64');
  // b holds the 4 shared blocks plus 1 of its own: 5 + 1 blocks in use, not 10
  assert.equal(engine.state().kvCacheUsedTokens, 6 * 16);
  assert.equal(engine.counters.prefixHits, 64);
});

test('prefix caching: finished sequences leave their blocks cached but free; later prompts still hit', () => {
  const { engine, submit, step } = setup({ prefillMsPerToken: 1 });
  submit('a', 64, 1, 1, { prefixHashes: ['q0', 'q1', 'q2', 'q3'] });
  step();
  assert.equal(engine.hasWork(), false);
  assert.equal(engine.state().kvCacheUsedTokens, 0, 'cached blocks count as free');
  submit('b', 64, 1, 1, { prefixHashes: ['q0', 'q1', 'q2', 'q3'] });
  assert.equal(step(), 0 + 11, 'whole prompt cached');
});

test('prefix caching: eviction is LRU and only when an allocation needs the room (within KV capacity)', () => {
  // 8 blocks in all
  const { engine, submit, step } = setup({ prefillMsPerToken: 1, kvCacheTokens: 128, maxNumSeqs: 8 });
  submit('a', 48, 1, 1, { prefixHashes: ['a0', 'a1', 'a2'] }); // 4 blocks, 3 cached
  step();
  submit('b', 48, 1, 1, { prefixHashes: ['b0', 'b1', 'b2'] });
  step();
  // a's and b's 6 cached blocks are unreferenced; a's are the least recently used, its tail first
  submit('c', 60, 1, 1, { prefixHashes: ['c0', 'c1', 'c2'] }); // needs 4 blocks: 2 never used + 2 evicted (a2, a1)
  step();
  submit('b2', 48, 1, 1, { prefixHashes: ['b0', 'b1', 'b2'] });
  assert.equal(step(), 0 + 11, "b's blocks survived");
  submit('a2', 48, 1, 1, { prefixHashes: ['a0', 'a1', 'a2'] });
  assert.equal(step(), 48 - 16 + 11, "a's tail was evicted, its head block a0 still hits");
  assert.equal(engine.state().kvCacheUsedTokens, 0);
});

test('prefix caching: a preempted sequence re-hits its own cached prompt blocks', () => {
  // 7 blocks: a and b take 3 each; at 16 tokens both need a 4th: a gets it, b is preempted
  const { engine, submit, step } = setup({
    prefillMsPerToken: 1,
    kvCacheTokens: 112,
    maxNumSeqs: 8,
    decodeStepMs: 0,
    decodeStepMsPerSeq: 0,
  });
  submit('a', 32, 20, 1000, { prefixHashes: ['x0', 'x1'] });
  submit('b', 32, 1000, 1000, { prefixHashes: ['y0', 'y1'] });
  assert.equal(step(), 64);
  let d: number | null = 0;
  for (let i = 0; i < 100 && engine.state().preemptions === 0; i++) d = step();
  assert.equal(engine.state().preemptions, 1);
  assert.equal(d, 0);
  for (let i = 0; i < 100; i++) {
    d = step();
    if (d !== null && d > 0) break;
  }
  // b's cached blocks were not needed by anyone meanwhile: its recompute of prompt + generated
  // (32 + 16 tokens) skips the 32 cached prompt tokens.
  assert.equal(d, 48 - 32);
  assert.ok(engine.state().kvCacheUsedTokens <= engine.state().kvCacheCapacityTokens);
});
