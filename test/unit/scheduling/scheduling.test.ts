import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Candidate } from '../../../router/scheduling/types.ts';
import { SchedulingProfile } from '../../../router/scheduling/profile.ts';
import { servesModel } from '../../../router/scheduling/filters/serves-model.ts';
import { available } from '../../../router/scheduling/filters/available.ts';
import { predictedWait, predictedWaitSeconds } from '../../../router/scheduling/scorers/predicted-wait.ts';
import { maxScorePicker } from '../../../router/scheduling/pickers/max-score.ts';
import { defaultProfile } from '../../../router/scheduling/scheduler.ts';

function node(
  id: string,
  over: {
    running?: number;
    waiting?: number;
    ttft?: number;
    maxNumSeqs?: number;
    ready?: boolean;
    draining?: boolean;
    models?: string[];
  } = {},
  c: Partial<Candidate> = {},
): Candidate {
  return {
    id,
    status: {
      nodeId: id,
      seq: '1',
      timestampMs: '0',
      ready: over.ready ?? true,
      notReadyReason: '',
      draining: over.draining ?? false,
      models: (over.models ?? ['m']).map((name) => ({ name, engineKind: 'vllm', maxContext: 4096 })),
      load: {
        running: over.running ?? 0,
        waiting: over.waiting ?? 0,
        kvCacheUsage: 0,
        ttftRecentSeconds: over.ttft ?? 0.1,
        prefixCacheHitRate: 0,
        maxNumSeqs: over.maxNumSeqs ?? 0,
        kvCacheCapacityTokens: '0',
      },
      gpuVerdict: 'HEALTHY',
      gpus: [],
      heartbeatIntervalMs: 500,
    },
    statusAgeMs: 100,
    connected: true,
    cordoned: false,
    inFlight: 0,
    dispatchedSinceStatus: 0,
    ...c,
  };
}
const req = (model = 'm', exclude: string[] = []) => ({ model, exclude: new Set(exclude) });

describe('filters', () => {
  it('serves-model keeps only nodes listing the model', () => {
    assert.equal(servesModel.keep(node('a', { models: ['m'] }), req('m')), true);
    assert.equal(servesModel.keep(node('a', { models: ['x'] }), req('m')), false);
    assert.equal(servesModel.keep(node('a', {}, { status: undefined }), req('m')), false);
  });

  it('available drops not-ready, draining, cordoned, disconnected, stale and excluded nodes', () => {
    const f = available(2_000);
    assert.equal(f.keep(node('a'), req()), true);
    assert.equal(f.keep(node('a', { ready: false }), req()), false);
    assert.equal(f.keep(node('a', { draining: true }), req()), false);
    assert.equal(f.keep(node('a', {}, { cordoned: true }), req()), false);
    assert.equal(f.keep(node('a', {}, { connected: false }), req()), false);
    assert.equal(f.keep(node('a', {}, { statusAgeMs: 2_001 }), req()), false);
    assert.equal(f.keep(node('a'), req('m', ['a'])), false);
  });
});

describe('predicted-wait scorer', () => {
  it('is 0 while a batch slot is free; then the queue ahead over the drain rate', () => {
    assert.equal(predictedWaitSeconds(node('a', { running: 3, maxNumSeqs: 8 }, { inFlight: 3, serviceSeconds: 4 })), 0);
    // full: 8 running, 8 slots, 4 s per sequence -> 2 completions/s; the next request waits for 1
    assert.equal(predictedWaitSeconds(node('a', { running: 8, maxNumSeqs: 8 }, { inFlight: 8, serviceSeconds: 4 })), 0.5);
    // 2 more of this router's dispatches since the status queue ahead of it
    assert.equal(
      predictedWaitSeconds(node('a', { running: 8, maxNumSeqs: 8 }, { inFlight: 10, dispatchedSinceStatus: 2, serviceSeconds: 4 })),
      1.5,
    );
  });

  it('scores a free slot above any queue, and a shorter queue above a longer one', () => {
    const free = predictedWait.score(node('a', { maxNumSeqs: 8 }, { inFlight: 7 }), req());
    const short = predictedWait.score(node('b', { maxNumSeqs: 8, running: 8 }, { inFlight: 8, serviceSeconds: 4 }), req());
    const long = predictedWait.score(node('c', { maxNumSeqs: 8, running: 8, waiting: 4 }, { inFlight: 12, serviceSeconds: 4 }), req());
    assert.equal(free, 1);
    assert.ok(short < 0.5 && long < short);
  });

  it('falls back to the recent TTFT per queued request before any drain rate is known', () => {
    assert.ok(Math.abs(predictedWaitSeconds(node('a', { ttft: 0.1, waiting: 4, maxNumSeqs: 4, running: 4 })) - 0.5) < 1e-9); // 4 queued ahead + itself
    assert.ok(predictedWaitSeconds(node('a', { ttft: 0, waiting: 1 })) > 0);
  });
});

describe('picker', () => {
  it('picks the highest score', () => {
    const p = maxScorePicker(() => 0);
    const a = node('a');
    const b = node('b');
    assert.equal(
      p.pick([
        { candidate: a, score: 0.2 },
        { candidate: b, score: 0.9 },
      ])?.id,
      'b',
    );
  });

  it('breaks exact ties at random, reaching every tied node', () => {
    const seen = new Set<string>();
    const values = [0, 0.34, 0.67, 0.99];
    let i = 0;
    const p = maxScorePicker(() => values[i++ % values.length]!);
    const cands = ['a', 'b', 'c'].map((id) => ({ candidate: node(id), score: 0.5 }));
    for (let k = 0; k < 8; k++) seen.add(p.pick(cands)!.id);
    assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
  });

  it('returns undefined when nothing is left', () => {
    assert.equal(maxScorePicker().pick([]), undefined);
  });
});

describe('scheduling profile', () => {
  it('filters, scores and picks the least predicted wait, reporting why nodes were dropped', () => {
    const profile = defaultProfile(2_000);
    const decision = profile.schedule(
      [node('busy', { waiting: 10 }), node('idle', { waiting: 0 }), node('cold', { ready: false }), node('other', { models: ['x'] })],
      req(),
    );
    assert.equal(decision.node?.id, 'idle');
    assert.deepEqual(decision.filtered, { 'serves-model': 1, available: 1 });
    assert.equal(decision.scores.length, 2);
  });

  it('weights scorers', () => {
    const prefersB = { name: 'prefers-b', score: (c: Candidate) => (c.id === 'b' ? 1 : 0) };
    const prefersA = { name: 'prefers-a', score: (c: Candidate) => (c.id === 'a' ? 1 : 0) };
    const profile = new SchedulingProfile(
      [],
      [
        { scorer: prefersA, weight: 1 },
        { scorer: prefersB, weight: 3 },
      ],
      maxScorePicker(() => 0),
    );
    assert.equal(profile.schedule([node('a'), node('b')], req()).node?.id, 'b');
  });
});
