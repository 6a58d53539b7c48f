import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseRecorder, canReplay, parseRecord, toBody, toFrames, isUsageOnlyChunk } from '../../../router/http/recorded-response.ts';

const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm' };
const chunks = [
  { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
  { ...base, choices: [{ index: 0, delta: { content: 'Hello' }, logprobs: null, finish_reason: null }] },
  { ...base, choices: [{ index: 0, delta: { content: ' world' }, logprobs: null, finish_reason: 'stop' }] },
  { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
].map((c) => JSON.stringify(c));

test('a recorded stream assembles into one chat completion', () => {
  const r = new ResponseRecorder('chat.completion').header('X-Backend', 'node:a');
  for (const c of chunks) r.frame(c);
  const rec = r.usage({ promptTokens: 3, completionTokens: 2 }).finish();
  assert.equal(rec.headers['x-backend'], 'node:a');
  assert.ok(canReplay(rec, false) && canReplay(rec, true));
  const body = JSON.parse(toBody(rec)!);
  assert.equal(body.object, 'chat.completion');
  assert.equal(body.choices[0].message.content, 'Hello world');
  assert.equal(body.choices[0].finish_reason, 'stop');
  assert.equal(body.usage.total_tokens, 5);
  assert.deepEqual(parseRecord(JSON.stringify(rec)), rec);
});

test('a JSON completion splits into chunks that assemble back to the same text', () => {
  const json = JSON.stringify({
    id: 'x',
    object: 'chat.completion',
    created: 2,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'abc' }, finish_reason: 'length', logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
  });
  const rec = new ResponseRecorder('chat.completion').json(json).finish();
  const frames = toFrames(rec)!;
  assert.ok(isUsageOnlyChunk(frames.at(-1)!));
  const again = new ResponseRecorder('chat.completion');
  for (const f of frames) again.frame(f);
  const body = JSON.parse(toBody(again.finish())!);
  assert.equal(body.choices[0].message.content, 'abc');
  assert.equal(body.choices[0].finish_reason, 'length');
  assert.equal(body.usage.completion_tokens, 3);
});

test('logprobs cannot be converted: the record only replays in its own shape', () => {
  const r = new ResponseRecorder('text_completion');
  r.frame(
    JSON.stringify({
      id: 'c',
      object: 'text_completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, text: 'a', logprobs: { tokens: ['a'] }, finish_reason: 'stop' }],
    }),
  );
  const rec = r.finish();
  assert.equal(canReplay(rec, true), true);
  assert.equal(canReplay(rec, false), false);
  assert.equal(parseRecord('{"v":2}'), undefined);
  assert.equal(parseRecord('not json'), undefined);
});
