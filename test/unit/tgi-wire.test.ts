// TGI wire parsing and the rewrites to OpenAI/vLLM shapes (node-agent/engines/tgi-wire.ts), against
// every SSE, JSON and meta file in test/fixtures/tgi.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateEventToChunks,
  generateResponseToCompletion,
  isValidationError,
  newHead,
  normalizeChatChunk,
  normalizeCompletionChunk,
  openAiFinishReason,
  sseData,
  tgiErrorMessage,
  tgiErrorSchema,
  tgiGenerateResponseSchema,
  tgiInfoSchema,
  tgiStreamResponseSchema,
  toGenerateRequest,
  versionAtLeast,
} from '../../node-agent/engines/tgi-wire.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'tgi');
const read = (f: string) => readFileSync(join(DIR, f), 'utf8');
const files = readdirSync(DIR);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read into arbitrary JSON
type Json = any;

test('every .sse fixture: SSE events parse (either data: framing), every payload is a TGI stream shape', () => {
  const sse = files.filter((f) => f.endsWith('.sse'));
  assert.equal(sse.length, 3);
  for (const f of sse) {
    const data = sseData(read(f));
    assert.ok(data.length >= 1, f);
    for (const d of data) {
      if (d === '[DONE]') continue;
      const v: unknown = JSON.parse(d);
      if (f.startsWith('generate-stream')) assert.ok(tgiStreamResponseSchema.safeParse(v).success, `${f}: ${d}`);
      else assert.equal((v as Json).object, 'chat.completion.chunk', f);
      assert.equal(tgiErrorMessage(v), null, `${f}: not an error`);
    }
  }
});

test('/generate_stream captures (2023 without index/input_length, 2024 with): one final event -> a completion chunk + usage', () => {
  const head = newHead('cmpl', 'flan');
  for (const f of ['generate-stream-no-details.flan-t5-xxl.2023-06.sse', 'generate-stream-with-details.flan-t5-xxl.2024-06.sse']) {
    assert.match(read(f), /^data:\{/, 'TGI writes data: without a space');
    const [d] = sseData(read(f));
    const ev = tgiStreamResponseSchema.parse(JSON.parse(d!));
    assert.equal(ev.generated_text, '');
    const [chunk, usage] = generateEventToChunks(ev, head) as Json[];
    assert.equal(chunk.object, 'text_completion');
    assert.equal(chunk.id, head.id);
    assert.deepEqual(chunk.choices, [{ index: 0, text: ' ', logprobs: null, finish_reason: 'length' }]);
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.completion_tokens, 1);
    assert.equal(usage.usage.prompt_tokens, 0); // neither capture has details.input_length
  }
  assert.equal(JSON.parse(sseData(read('generate-stream-with-details.flan-t5-xxl.2024-06.sse'))[0]!).index, 1);
});

test('chat capture (TGI 3.2.1): id "" and usage null rewritten; eos/length finish reasons; ends with [DONE]', () => {
  const f = 'chat-completions-stream.tgi-3.2.1.llama-3.1-8b-instruct.sse';
  const data = sseData(read(f));
  assert.equal(data.at(-1), '[DONE]');
  const head = newHead('chatcmpl', 'llama');
  let text = '';
  const out = data.slice(0, -1).map((d) => normalizeChatChunk(JSON.parse(d), head) as Json);
  for (const c of out) {
    assert.equal(c.id, head.id);
    assert.equal(c.model, 'llama');
    assert.equal('usage' in c, false);
    text += c.choices[0].delta.content;
  }
  assert.equal(out.length, 20); // max_tokens 20, one token per chunk
  assert.ok(text.startsWith('Deep learning is a subset of machine learning'));
  assert.equal(out.at(-1).choices[0].finish_reason, 'length');
  assert.ok(out.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
  const raw = JSON.parse(data[0]!);
  assert.equal(raw.id, '');
  assert.equal(raw.usage, null);
});

test('every .json fixture parses; /generate answer, 422 error, openapi and each .meta.json have their expected shapes', () => {
  const json = files.filter((f) => f.endsWith('.json'));
  assert.equal(json.length, 8);
  for (const f of json) {
    const v: Json = JSON.parse(read(f));
    if (f.endsWith('.meta.json')) {
      assert.equal(v.request.method, 'POST', f);
      assert.equal(typeof v.response_status.code, 'number', f);
      if (f.startsWith('generate-') && !f.includes('422')) assert.equal(v.response_status.code, 200);
    } else if (f.startsWith('generate-with-details')) {
      // "/" (compat_generate) wraps the answer in an array
      const r = tgiGenerateResponseSchema.parse(v[0]);
      const out = generateResponseToCompletion(r, newHead('cmpl', 'flan'), 2) as Json;
      assert.deepEqual(out.usage, { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });
      assert.equal(out.choices[0].finish_reason, 'length');
    } else if (f.startsWith('generate-422')) {
      assert.ok(tgiErrorSchema.safeParse(v).success);
      const e = tgiErrorMessage(v)!;
      assert.ok(isValidationError(e));
      assert.match(e.message, /must be <= 1512/);
    } else if (f.startsWith('openapi')) {
      assert.equal(v.info.version, '3.3.6-dev0');
      for (const p of ['/generate', '/generate_stream', '/v1/chat/completions', '/v1/completions', '/health', '/info', '/metrics'])
        assert.ok(p in v.paths, p);
      assert.deepEqual(v.components.schemas.FinishReason.enum, ['length', 'eos_token', 'stop_sequence']);
      // the adapter's /info schema needs only fields the spec requires
      for (const k of ['model_id', 'max_total_tokens', 'version']) assert.ok(v.components.schemas.Info.required.includes(k), k);
    } else {
      assert.fail(`no check for ${f}`);
    }
  }
  // the capture's timing headers: x-prompt-tokens is where a non-streaming translation reads prompt tokens
  const meta: Json = JSON.parse(read('generate-with-details.flan-t5-xxl.2024-06.meta.json'));
  assert.deepEqual(meta.response_headers['x-prompt-tokens'], ['2']);
});

test('completions chunks: finish "" -> null; the last chunk is split into token chunk + usage chunk; eos text blanked', () => {
  const head = newHead('cmpl', 'm');
  const mid = normalizeCompletionChunk(
    {
      object: 'text_completion',
      id: '',
      created: 1,
      model: 'repo/x',
      system_fingerprint: '3.3.6-native',
      choices: [{ finish_reason: '', index: 0, logprobs: null, text: ' a' }],
    },
    head,
  ) as Json[];
  assert.equal(mid.length, 1);
  assert.equal(mid[0].choices[0].finish_reason, null);
  assert.equal(mid[0].model, 'm');
  const last = normalizeCompletionChunk(
    {
      object: 'text_completion',
      id: '',
      created: 1,
      model: 'repo/x',
      system_fingerprint: 's',
      choices: [{ finish_reason: 'eos_token', index: 0, logprobs: null, text: '</s>' }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    },
    head,
  ) as Json[];
  assert.equal(last.length, 2);
  assert.deepEqual(last[0].choices[0], { finish_reason: 'stop', index: 0, logprobs: null, text: '' });
  assert.equal('usage' in last[0], false);
  assert.deepEqual(last[1].choices, []);
  assert.equal(last[1].usage.total_tokens, 7);
});

test('finish reasons, versions, /info and the OpenAI -> /generate translation', () => {
  assert.equal(openAiFinishReason('eos_token'), 'stop');
  assert.equal(openAiFinishReason('stop_sequence'), 'stop');
  assert.equal(openAiFinishReason('length'), 'length');
  assert.equal(openAiFinishReason(''), null);
  assert.ok(versionAtLeast('3.3.6-dev0', [1, 4, 4]));
  assert.ok(versionAtLeast('1.4.4', [1, 4, 4]));
  assert.ok(!versionAtLeast('1.4.3', [1, 4, 4]));
  assert.ok(!versionAtLeast('0.9.4', [1, 4, 4]));
  assert.ok(versionAtLeast('weird', [1, 4, 4]));
  assert.ok(tgiInfoSchema.safeParse({ model_id: 'm', max_total_tokens: 2048, version: '1.4.0', max_input_length: 1024 }).success);

  assert.deepEqual(toGenerateRequest({ model: 'm', prompt: 'hi', max_tokens: 5, temperature: 0, stop: 'x', seed: 3 }, true), {
    inputs: 'hi',
    parameters: { details: true, max_new_tokens: 5, do_sample: false, seed: 3, stop: ['x'] },
    stream: true,
  });
  assert.deepEqual(toGenerateRequest({ prompt: ['one'], temperature: 0.7, top_p: 0.9 }, false), {
    inputs: 'one',
    parameters: { details: true, temperature: 0.7, do_sample: true, top_p: 0.9 },
    stream: false,
  });
  assert.throws(() => toGenerateRequest({ prompt: ['a', 'b'] }, true), /one string prompt/);
  assert.throws(() => toGenerateRequest({ prompt: 'a', n: 2 }, true), /`n`/);
});

test('error shapes: TGI ErrorResponse, the OpenAI-route stream error; chunks are not errors', () => {
  assert.deepEqual(tgiErrorMessage({ error: 'Model is overloaded', error_type: 'overloaded' }), {
    message: 'Model is overloaded',
    type: 'overloaded',
  });
  const e = tgiErrorMessage({ error: { message: 'Input validation error: `inputs` cannot be empty', http_status_code: 422 } })!;
  assert.ok(isValidationError(e));
  assert.ok(!isValidationError({ message: 'Request failed during generation: boom', type: 'generation' }));
  assert.equal(tgiErrorMessage({ choices: [], usage: { prompt_tokens: 1 } }), null);
});
