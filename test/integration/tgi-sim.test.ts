// The TGI simulator over real HTTP on loopback: wire shapes against the real captures and TGI's
// openapi, /health, /info, /metrics through the agent's parser, faults, the CLI; and the agent's
// TgiAdapter against it (error classification, cancel frees the engine slot, version fallback).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { startTgiSim, type TgiSim, type TgiSimOptions } from '../sim/tgi/server.ts';
import { parseTgiMetrics } from '../../node-agent/engines/tgi-metrics.ts';
import { sseData } from '../../node-agent/engines/tgi-wire.ts';
import { TgiAdapter } from '../../node-agent/engines/tgi.ts';
import { EngineError, type EngineEvent } from '../../node-agent/engines/engine.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'tgi');
const MODEL = 'sim/tgi-test';
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read into arbitrary response JSON
type Json = any;
const fixture = (f: string) => readFileSync(join(FIXTURES, f), 'utf8');
const openapi: Json = JSON.parse(fixture('openapi.tgi-3.3.6-dev0.json'));
const sims: TgiSim[] = [];
const adapters: TgiAdapter[] = [];
after(async () => {
  await Promise.all([...sims.map((s) => s.close()), ...adapters.map((a) => a.close())]);
});

async function sim(o: Partial<TgiSimOptions> = {}) {
  const s = await startTgiSim({ model: MODEL, seed: 7, decodeStepMs: 1, decodeStepMsPerSeq: 0, ...o });
  sims.push(s);
  return s;
}
function adapter(s: TgiSim, completions?: 'auto' | 'native' | 'generate') {
  const a = new TgiAdapter({ url: s.url, requestTimeoutMs: 10_000, completions });
  adapters.push(a);
  return a;
}
const post = (s: TgiSim, path: string, body: unknown) =>
  fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const keys = (o: object) => Object.keys(o).sort();
async function collect(it: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

test('/generate_stream: data: without a space, StreamResponse events, last one with generated_text and details, no [DONE]', async () => {
  const s = await sim();
  const res = await post(s, '/generate_stream', { inputs: 'What is TGI?', parameters: { max_new_tokens: 4 } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const body = await res.text();
  assert.match(body, /^data:\{/);
  assert.ok(!body.includes('[DONE]'));
  const events = sseData(body).map((d) => JSON.parse(d) as Json);
  assert.equal(events.length, 4);
  const props = Object.keys(openapi.components.schemas.StreamResponse.properties);
  const captured = JSON.parse(sseData(fixture('generate-stream-with-details.flan-t5-xxl.2024-06.sse'))[0]!);
  for (const [i, e] of events.entries()) {
    for (const k of Object.keys(e)) assert.ok(props.includes(k), `StreamResponse has ${k}`);
    assert.deepEqual(keys(e.token), keys(captured.token));
    assert.equal(e.index, i + 1);
  }
  const last = events.at(-1);
  assert.equal(last.generated_text, events.map((e) => e.token.text).join(''));
  assert.deepEqual(keys(last.details), keys(openapi.components.schemas.StreamDetails.properties));
  assert.equal(last.details.finish_reason, 'length');
  assert.ok(events.slice(0, -1).every((e) => e.generated_text === null && e.details === null));
});

test('/v1/chat/completions stream matches the 3.2.1 capture key for key; include_usage chunk; [DONE]', async () => {
  const s = await sim();
  const body = await (
    await post(s, '/v1/chat/completions', {
      model: 'tgi',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    })
  ).text();
  assert.match(body, /^data: \{/);
  const data = sseData(body);
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Json);
  const ref = JSON.parse(sseData(fixture('chat-completions-stream.tgi-3.2.1.llama-3.1-8b-instruct.sse'))[0]!);
  assert.equal(chunks.length, 4);
  for (const c of chunks.slice(0, 3)) {
    assert.deepEqual(keys(c), keys(ref));
    assert.deepEqual(keys(c.choices[0]), keys(ref.choices[0]));
    assert.deepEqual(keys(c.choices[0].delta), keys(ref.choices[0].delta));
    assert.equal(c.id, '');
    assert.equal(c.system_fingerprint, '3.3.6-native');
  }
  assert.equal(chunks[2].choices[0].finish_reason, 'length');
  assert.deepEqual(chunks[3].choices, []);
  assert.equal(chunks[3].usage.completion_tokens, 3);
});

test('/generate: GenerateResponse with details and TGI timing headers; 422 validation like the capture, in-stream on /generate_stream', async () => {
  const s = await sim();
  const res = await post(s, '/generate', { inputs: 'test', parameters: { max_new_tokens: 2, details: true } });
  const r: Json = await res.json();
  const captured: Json = JSON.parse(fixture('generate-with-details.flan-t5-xxl.2024-06.json'))[0];
  assert.deepEqual(keys(r), keys(captured));
  assert.deepEqual(keys(r.details), keys(captured.details));
  assert.equal(r.details.generated_tokens, 2);
  const meta: Json = JSON.parse(fixture('generate-with-details.flan-t5-xxl.2024-06.meta.json'));
  for (const h of Object.keys(meta.response_headers).filter((k) =>
    /^x-(compute-time|total-time|queue-time|inference-time|time-per-token|prompt-tokens|generated-tokens|validation-time)$/.test(k),
  )) {
    assert.ok(res.headers.get(h) !== null, h);
  }
  assert.equal(res.headers.get('x-generated-tokens'), '2');

  const bad = await post(s, '/generate', { inputs: 'test', parameters: { max_new_tokens: 100_000 } });
  assert.equal(bad.status, 422);
  const e: Json = await bad.json();
  assert.deepEqual(keys(e), keys(JSON.parse(fixture('generate-422-validation-error.flan-t5-xxl.json'))));
  assert.equal(e.error_type, 'validation');
  assert.match(
    e.error,
    /^Input validation error: `inputs` tokens \+ `max_new_tokens` must be <= 4096\. Given: \d+ `inputs` tokens and 100000 `max_new_tokens`$/,
  );

  const streamed = await post(s, '/generate_stream', { inputs: 'test', parameters: { max_new_tokens: 100_000 } });
  assert.equal(streamed.status, 200);
  const [ev] = sseData(await streamed.text()).map((d) => JSON.parse(d) as Json);
  assert.equal(ev.error_type, 'validation');
});

test('/info has every field the openapi Info schema requires; /health 200 empty, 503 with engineDead; unknown route 404 empty', async () => {
  const s = await sim({ maxTotalTokens: 2048, maxInputTokens: 1024 });
  const info: Json = await (await fetch(s.url + '/info')).json();
  for (const k of openapi.components.schemas.Info.required) assert.ok(k in info, k);
  assert.equal(info.model_id, MODEL);
  assert.equal(info.max_total_tokens, 2048);
  assert.equal(info.router, 'text-generation-router');
  const ok = await fetch(s.url + '/health');
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), '');
  s.setFaults({ engineDead: true });
  const dead = await fetch(s.url + '/health');
  assert.equal(dead.status, 503);
  assert.deepEqual(await dead.json(), { error: 'unhealthy', error_type: 'healthcheck' });
  const missing = await fetch(s.url + '/nope');
  assert.equal(missing.status, 404);
  assert.equal(await missing.text(), '');
});

test('/metrics: TGI names only (no _total), load visible while a batch runs, totals after', async () => {
  // 25 ms a step x 20 tokens: the first pair runs ~500 ms. Poll for the four to arrive (a fixed
  // 30 ms wait raced the requests on a loaded machine; the sim joins them to the batch step by
  // step) within 2 s, well inside that window.
  const s = await sim({ decodeStepMs: 25, maxNumSeqs: 2 });
  const texts = Array.from({ length: 4 }, (_, i) =>
    post(s, '/generate', { inputs: `prompt ${i}`, parameters: { max_new_tokens: 20 } }).then((r) => r.json()),
  );
  let during = parseTgiMetrics(await (await fetch(s.url + '/metrics')).text());
  for (const until = Date.now() + 2_000; !(during.running === 2 && during.waiting === 2) && Date.now() < until;) {
    await new Promise((r) => setTimeout(r, 10));
    during = parseTgiMetrics(await (await fetch(s.url + '/metrics')).text());
  }
  assert.equal(during.running, 2);
  assert.equal(during.waiting, 2);
  assert.ok(during.kvCacheUsage > 0);
  await Promise.all(texts);
  const text = await (await fetch(s.url + '/metrics')).text();
  const names = new Set(
    text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]!),
  );
  const captured = new Set(
    fixture('metrics-tgi-datadog-fixture.txt')
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]!),
  );
  for (const n of names) assert.ok(captured.has(n) || n === 'tgi_batch_max_total_tokens', `${n} is a real TGI name`);
  assert.ok(![...names].some((n) => n.endsWith('_total')));
  assert.match(text, /^tgi_request_count 4$/m);
  assert.match(text, /^tgi_batch_inference_duration_count\{method="prefill"\} \d+$/m);
  const after = parseTgiMetrics(text);
  assert.equal(after.running, 0);
  assert.equal(after.generationTokensTotal, 80);
  assert.equal(after.e2eLatency.count, 4);
  assert.ok(after.ttft.count === 4 && after.ttft.sum > 0);
});

test('adapter: chat stream yields vLLM-like chunks and usage; completions native, or translated on TGI 1.4.0 (404 then /generate_stream)', async () => {
  const s = await sim();
  const a = adapter(s);
  assert.equal(await a.health(), true);
  assert.deepEqual(await a.models(), [{ name: MODEL, maxContext: 4096 }]);
  const ev = await collect(
    a.generate(
      'CHAT_COMPLETIONS',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 3, stream: true },
      new AbortController().signal,
    ),
  );
  const usage = ev.at(-1) as Extract<EngineEvent, { type: 'usage' }>;
  assert.equal(usage.type, 'usage');
  assert.equal(usage.completionTokens, 3);
  assert.ok(usage.ttftSeconds > 0);
  const chunks = ev.filter((e) => e.type === 'chunk').map((e) => JSON.parse((e as { json: string }).json) as Json);
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  assert.deepEqual(chunks.at(-1).choices, []); // the usage chunk the router strips unless asked

  const old = await sim({ version: '1.4.0' });
  assert.equal((await post(old, '/v1/completions', { prompt: 'x' })).status, 404);
  const b = adapter(old); // models() not called: it must discover the missing route by the 404
  const out = await collect(
    b.generate('COMPLETIONS', { model: MODEL, prompt: 'hello', max_tokens: 4, stream: true }, new AbortController().signal),
  );
  const cs = out.filter((e) => e.type === 'chunk').map((e) => JSON.parse((e as { json: string }).json) as Json);
  assert.equal(cs.filter((c) => c.choices.length > 0).length, 4);
  assert.equal(cs.at(-2).choices[0].finish_reason, 'length');
  assert.deepEqual((out.at(-1) as Json).completionTokens, 4);
});

test("adapter: TGI errors classified like vLLM's (dead shard, 5xx, mid-stream failure, overload, invalid)", async () => {
  const s = await sim();
  const a = adapter(s);
  const chat = (extra: Record<string, unknown> = {}) =>
    collect(
      a.generate(
        'CHAT_COMPLETIONS',
        { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 5, ...extra },
        new AbortController().signal,
      ),
    );
  const kind = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: unknown) => (e instanceof EngineError ? `${e.kind}:${e.httpStatus}` : String(e)),
    );

  assert.equal(await kind(chat({ max_tokens: 100_000 })), 'INVALID_REQUEST:400');
  assert.equal(await kind(chat({ max_tokens: 100_000, stream: true })), 'INVALID_REQUEST:400');
  s.setFaults({ failAfterTokens: 2 });
  assert.equal(await kind(chat({ stream: true })), 'ENGINE_ERROR:0');
  s.setFaults({ failAfterTokens: null, http5xx: true });
  assert.equal(await kind(chat()), 'ENGINE_ERROR:500');
  s.setFaults({ http5xx: false, engineDead: true });
  assert.equal(await kind(chat()), 'ENGINE_ERROR:424');
  assert.equal(await a.health(), false);
  s.setFaults({ engineDead: false });

  const busy = await sim({ maxConcurrentRequests: 1, decodeStepMs: 20 });
  const c = adapter(busy);
  const first = collect(
    c.generate(
      'CHAT_COMPLETIONS',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 5, stream: true },
      new AbortController().signal,
    ),
  );
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(
    await kind(
      collect(
        c.generate(
          'CHAT_COMPLETIONS',
          { model: MODEL, messages: [{ role: 'user', content: 'y' }], max_tokens: 5 },
          new AbortController().signal,
        ),
      ),
    ),
    'ENGINE_OVERLOADED:429',
  );
  await first;
});

test('adapter: cancelling a stream frees the engine slot', async () => {
  const s = await sim({ decodeStepMs: 20 });
  const a = adapter(s);
  const ac = new AbortController();
  const events = a.generate(
    'CHAT_COMPLETIONS',
    { model: MODEL, messages: [{ role: 'user', content: 'long' }], max_tokens: 500, stream: true },
    ac.signal,
  );
  const it = events[Symbol.asyncIterator]();
  await it.next();
  assert.equal(s.state().running, 1);
  ac.abort();
  await it.next().then(
    () => undefined,
    (e: unknown) => assert.equal((e as EngineError).kind, 'CANCELLED'),
  );
  const until = Date.now() + 2000;
  while (s.state().running > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.state().running, 0);
  assert.equal(s.state().aborted, 1);
});

test('CLI: one listening line on stdout, serves, exits 0 on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, '..', 'sim', 'tgi', 'main.ts'),
      '--port',
      '0',
      '--model',
      'cli-model',
      '--tgi-version',
      '2.0.4',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
    const msg = JSON.parse(line) as { event: string; service: string; url: string };
    assert.equal(msg.event, 'listening');
    assert.equal(msg.service, 'tgi-sim');
    const info: Json = await (await fetch(msg.url + '/info')).json();
    assert.equal(info.model_id, 'cli-model');
    assert.equal(info.version, '2.0.4');
  } finally {
    const code = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    assert.equal(await code, 0);
  }
});
