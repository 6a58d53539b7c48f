// The vLLM simulator over real HTTP on loopback: wire shapes against the real capture, health,
// metrics through the agent's parser, client aborts, model-load time and every fault switch.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startVllmSim, type VllmSim, type VllmSimOptions } from '../sim/vllm/server.ts';
import { parseVllmMetrics } from '../../node-agent/engines/vllm-metrics.ts';
import { freePort } from '../helpers/ports.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'vllm');
const MODEL = 'sim/llama-test';
const sims: VllmSim[] = [];
after(async () => {
  await Promise.all(sims.map((s) => s.close()));
});

async function sim(o: Partial<VllmSimOptions> = {}) {
  const s = await startVllmSim({ model: MODEL, seed: 42, decodeStepMs: 1, decodeStepMsPerSeq: 0, ...o });
  sims.push(s);
  return s;
}
const post = (s: VllmSim, path: string, body: unknown, init: RequestInit = {}) =>
  fetch(s.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
const chat = (extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'Count from 1 to 5, comma separated.' }],
  ...extra,
});
/** split an SSE body into its data payloads, checking the framing on the way */
function sseEvents(body: string): string[] {
  assert.ok(body.endsWith('\n\n'), 'every event ends with a blank line');
  const events = body.slice(0, -2).split('\n\n');
  for (const e of events) assert.match(e, /^data: /);
  return events.map((e) => e.slice('data: '.length));
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read into arbitrary response JSON
type Json = any;
const json = (r: Response): Promise<Json> => r.json();
const keys = (o: object) => Object.keys(o).sort();
async function waitFor(cond: () => boolean | Promise<boolean>, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail('condition not reached in time');
}
test('streaming chat with include_usage has the framing and fields of the real vLLM capture', async () => {
  const s = await sim();
  const res = await post(s, '/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true } }));
  assert.equal(res.status, 200);
  const meta = JSON.parse(readFileSync(join(FIXTURES, 'chat-stream-include-usage.vllm-0.24.0-via-crusoe.llama-3.3-70b.meta.json'), 'utf8'));
  assert.equal(res.headers.get('content-type'), meta.response_headers['content-type'][0]);

  const real = sseEvents(readFileSync(join(FIXTURES, 'chat-stream-include-usage.vllm-0.24.0-via-crusoe.llama-3.3-70b.sse'), 'utf8'));
  const mine = sseEvents(await res.text());
  for (const ev of [real, mine]) assert.equal(ev.at(-1), '[DONE]');
  const parse = (ev: string[]) => ev.slice(0, -1).map((e) => JSON.parse(e));
  const [r, m] = [parse(real), parse(mine)];
  // first chunk, a token chunk, the finishing chunk, the usage chunk: same keys at every level
  const shape = (c: { choices: Array<Record<string, unknown>> } & Record<string, unknown>) => ({
    top: keys(c),
    choice: c.choices[0] ? keys(c.choices[0]) : [],
    delta: c.choices[0] ? keys(c.choices[0].delta as object) : [],
    usage: c.usage ? keys(c.usage as object) : null,
  });
  assert.deepEqual(shape(m[0]), shape(r[0]));
  assert.deepEqual(shape(m[1]), shape(r[1]));
  assert.deepEqual(shape(m.at(-2)), shape(r.at(-2)));
  assert.deepEqual(shape(m.at(-1)), shape(r.at(-1)));
  // ordinary chunks have no "usage" key at all (vLLM dumps with exclude_unset)
  for (const c of m.slice(0, -1)) assert.ok(!('usage' in c));
  const last = m.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.equal(last.usage.completion_tokens, m.length - 2, 'one chunk per token after the role chunk');
  assert.match(m[0].id, /^chatcmpl-[0-9a-f]{16}$/);
  assert.ok(
    m.every((c: { id: string; model: string; created: number }) => c.id === m[0].id && c.model === MODEL && c.created === m[0].created),
  );
  assert.equal(m.at(-2).choices[0].finish_reason, 'stop');
});

test('streaming without include_usage: no usage chunk; completions stream uses text_completion chunks', async () => {
  const s = await sim();
  const ev = sseEvents(await (await post(s, '/v1/chat/completions', chat({ stream: true, max_tokens: 4 }))).text());
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.choices.length === 1));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  assert.equal(chunks.length, 1 + 4);

  const cev = sseEvents(
    await (
      await post(s, '/v1/completions', {
        model: MODEL,
        prompt: 'Once upon',
        stream: true,
        max_tokens: 3,
        stream_options: { include_usage: true },
      })
    ).text(),
  );
  const cc = cev.slice(0, -1).map((e) => JSON.parse(e));
  assert.match(cc[0].id, /^cmpl-[0-9a-f]{16}$/);
  assert.equal(cc[0].object, 'text_completion');
  assert.equal(typeof cc[0].choices[0].text, 'string');
  assert.equal(cc.at(-1).usage.completion_tokens, 3);
});

test('non-streaming chat and completions; same seed and prompt give the same text', async () => {
  const s = await sim();
  const a = await json(await post(s, '/v1/chat/completions', chat({ max_completion_tokens: 8 })));
  assert.equal(a.object, 'chat.completion');
  assert.equal(a.choices[0].message.role, 'assistant');
  assert.equal(a.choices[0].finish_reason, 'length');
  assert.equal(a.usage.completion_tokens, 8);
  assert.ok(a.usage.prompt_tokens > 0);
  const b = await json(await post(s, '/v1/chat/completions', chat({ max_completion_tokens: 8 })));
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.id, b.id);

  const c = await json(await post(s, '/v1/completions', { model: MODEL, prompt: ['Hello', ' world'] }));
  assert.equal(c.object, 'text_completion');
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.ok(c.choices[0].text.length > 0);
});

test('ignore_eos (vLLM sampling parameter) generates to max_tokens instead of the natural stop', async () => {
  const s = await sim();
  const natural = await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 500 })));
  assert.equal(natural.choices[0].finish_reason, 'stop');
  assert.ok(natural.usage.completion_tokens < 500);
  const forced = await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 500, ignore_eos: true })));
  assert.equal(forced.choices[0].finish_reason, 'length');
  assert.equal(forced.usage.completion_tokens, 500);
});

test('/v1/models in vLLM shape, /health 200 with an empty body, unknown route 404', async () => {
  const s = await sim({ maxModelLen: 4096 });
  const m = await json(await fetch(s.url + '/v1/models'));
  assert.equal(m.object, 'list');
  assert.equal(m.data[0].id, MODEL);
  assert.equal(m.data[0].owned_by, 'vllm');
  assert.equal(m.data[0].max_model_len, 4096);
  const h = await fetch(s.url + '/health');
  assert.equal(h.status, 200);
  assert.equal(await h.text(), '');
  assert.equal((await fetch(s.url + '/nope')).status, 404);
});

test('errors in OpenAI/vLLM shape: unknown model 404, invalid body 400, bad JSON 400, prompt too long 400', async () => {
  const s = await sim({ maxModelLen: 64 });
  const check = async (res: Response, status: number, type: string) => {
    assert.equal(res.status, status);
    const b = await json(res);
    assert.deepEqual(keys(b.error), ['code', 'message', 'param', 'type']);
    assert.equal(b.error.code, status);
    assert.equal(b.error.type, type);
    return b.error;
  };
  const nf = await check(await post(s, '/v1/chat/completions', chat({ model: 'other' })), 404, 'NotFoundError');
  assert.equal(nf.message, 'The model `other` does not exist.');
  await check(await post(s, '/v1/chat/completions', { model: MODEL, messages: 'hi' }), 400, 'BadRequestError');
  await check(await post(s, '/v1/chat/completions', { model: MODEL, messages: [] }), 400, 'BadRequestError');
  await check(await post(s, '/v1/completions', { model: MODEL }), 400, 'BadRequestError');
  await check(await post(s, '/v1/chat/completions', '{"model": '), 400, 'BadRequestError');
  await check(await post(s, '/v1/chat/completions', chat({ stream_options: { include_usage: true } })), 400, 'BadRequestError');
  const long = await check(await post(s, '/v1/completions', { model: MODEL, prompt: 'x'.repeat(1000) }), 400, 'BadRequestError');
  assert.match(long.message, /maximum context length is 64 tokens/);
});

test('/metrics, read with the agent parser, reflects running and waiting', async () => {
  const s = await sim({ maxNumSeqs: 2, decodeStepMs: 20 });
  const ctl = new AbortController();
  const streams = Array.from({ length: 4 }, (_, i) =>
    post(s, '/v1/chat/completions', chat({ stream: true, messages: [{ role: 'user', content: `q${i}` }] }), { signal: ctl.signal }).catch(
      () => null,
    ),
  );
  await waitFor(() => s.state().running === 2 && s.state().waiting === 2);
  const res = await fetch(s.url + '/metrics');
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const snap = parseVllmMetrics(await res.text());
  assert.equal(snap.running, 2);
  assert.equal(snap.waiting, 2);
  assert.ok(snap.kvCacheUsage > 0 && snap.kvCacheUsage < 1);
  assert.deepEqual(snap.modelNames, [MODEL]);
  ctl.abort();
  await Promise.all(streams);
  await waitFor(() => s.state().running === 0 && s.state().waiting === 0);
  const after = parseVllmMetrics(await (await fetch(s.url + '/metrics')).text());
  assert.ok(after.promptTokensTotal > 0 && after.generationTokensTotal > 0 && after.ttft.count > 0);
});

test('legacy metric names (vLLM <= 0.10) are exposed by the sim and read by the parser', async () => {
  const s = await sim({ metricsNaming: 'legacy' });
  await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 5 })));
  const text = await (await fetch(s.url + '/metrics')).text();
  assert.match(text, /^vllm:gpu_cache_usage_perc\{/m);
  assert.match(text, /^vllm:time_per_output_token_seconds_count\{/m);
  assert.match(text, /^vllm:gpu_prefix_cache_queries_total\{/m);
  assert.doesNotMatch(text, /vllm:kv_cache_usage_perc|vllm:inter_token_latency_seconds|vllm:prefix_cache_queries_total/);
  const snap = parseVllmMetrics(text);
  assert.equal(snap.interTokenLatency.count, 4);
  assert.ok(snap.prefixCacheQueriesTotal > 0);
  assert.equal(snap.generationTokensTotal, 5);
});

test('a client that aborts mid-stream frees its engine slot at once', async () => {
  const s = await sim({ decodeStepMs: 20, maxNumSeqs: 1 });
  const ctl = new AbortController();
  const res = await post(s, '/v1/chat/completions', chat({ stream: true }), { signal: ctl.signal });
  const reader = res.body!.getReader();
  await reader.read(); // first token is out
  assert.equal(s.state().running, 1);
  ctl.abort();
  await waitFor(() => s.state().running === 0, 1000);
  assert.equal(s.state().aborted, 1);
  assert.equal(s.state().kvCacheUsedTokens, 0);
  // the slot is usable again
  const again = await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 2 })));
  assert.equal(again.usage.completion_tokens, 2);
});

test('loadTimeMs: nothing listens until the model has loaded', async () => {
  const port = await freePort();
  // Probed 100 ms in, 1.9 s before the model has loaded: headroom for a stalled event loop.
  const starting = sim({ port, loadTimeMs: 2_000 });
  await new Promise((r) => setTimeout(r, 100));
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  const s = await starting;
  assert.equal((await fetch(s.url + '/health')).status, 200);
});

test('fault engineDead: /health 503, generation 500, in-flight streams end with an error event', async () => {
  const s = await sim({ decodeStepMs: 20 });
  const res = await post(s, '/v1/chat/completions', chat({ stream: true }));
  const body = res.text();
  await waitFor(() => s.state().running === 1);
  s.setFaults({ engineDead: true });
  const ev = sseEvents(await body);
  assert.equal(ev.at(-1), '[DONE]');
  assert.equal(JSON.parse(ev.at(-2)!).error.code, 500);
  assert.equal((await fetch(s.url + '/health')).status, 503);
  const r = await post(s, '/v1/chat/completions', chat());
  assert.equal(r.status, 500);
  assert.equal((await json(r)).error.type, 'InternalServerError');
  s.setFaults({ engineDead: false });
  assert.equal((await fetch(s.url + '/health')).status, 200);
});

test('fault http5xx (flipped over HTTP by /sim/faults): 500 in OpenAI shape; /sim/state', async () => {
  const s = await sim();
  const f = await post(s, '/sim/faults', { http5xx: true });
  assert.equal(f.status, 200);
  assert.equal((await json(f)).http5xx, true);
  const r = await post(s, '/v1/chat/completions', chat());
  assert.equal(r.status, 500);
  assert.equal((await json(r)).error.code, 500);
  assert.equal((await post(s, '/sim/faults', { bogus: 1 })).status, 400);
  await post(s, '/sim/faults', { http5xx: false });
  assert.equal((await post(s, '/v1/chat/completions', chat({ max_tokens: 1 }))).status, 200);
  const st = await json(await fetch(s.url + '/sim/state'));
  assert.deepEqual(keys(st), ['aborted', 'completed', 'kvCacheCapacityTokens', 'kvCacheUsedTokens', 'preemptions', 'running', 'waiting']);
  assert.equal(st.completed, 1);
});

test('fault failAfterTokens: the stream breaks with an error event after N tokens', async () => {
  const s = await sim({ faults: { failAfterTokens: 3 } });
  const ev = sseEvents(await (await post(s, '/v1/chat/completions', chat({ stream: true }))).text());
  assert.equal(ev.at(-1), '[DONE]');
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.at(-1).error.type, 'InternalServerError');
  assert.equal(chunks.filter((c) => c.choices?.[0]?.delta?.content).length, 3);
  const nonStream = await post(s, '/v1/chat/completions', chat());
  assert.equal(nonStream.status, 500);
  await waitFor(() => s.state().running === 0);
});

test('fault hang: the request is accepted and never answered; close() still completes', async () => {
  const s = await startVllmSim({ model: MODEL, faults: { hang: true } });
  try {
    await assert.rejects(post(s, '/v1/chat/completions', chat(), { signal: AbortSignal.timeout(300) }), /TimeoutError|aborted/i);
    assert.equal((await fetch(s.url + '/health')).status, 200);
    void post(s, '/v1/chat/completions', chat()).catch(() => null); // left hanging for close()
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    await s.close();
  }
});

test('fault dropConnection: the socket is destroyed mid-stream without a final event', async () => {
  const s = await sim({ faults: { dropConnection: true } });
  const res = await post(s, '/v1/chat/completions', chat({ stream: true }));
  assert.equal(res.status, 200);
  await assert.rejects(res.text());
  await assert.rejects(post(s, '/v1/chat/completions', chat()));
  await waitFor(() => s.state().running === 0);
});

test('fault slowdown: a brownout makes generation proportionally slower', async () => {
  const s = await sim({ decodeStepMs: 4, prefillMsPerToken: 0 });
  const time = async () => {
    const t0 = performance.now();
    await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 10 })));
    return performance.now() - t0;
  };
  // The fastest of three runs: on a loaded CI machine one run can be delayed, the minimum is not.
  const fastest = async () => Math.min(await time(), await time(), await time());
  const normal = await fastest();
  s.setFaults({ slowdown: 10 });
  const slow = await fastest();
  assert.ok(slow > normal * 4, `normal ${normal.toFixed(1)} ms, slow ${slow.toFixed(1)} ms`);
  assert.ok(slow >= 10 * 4 * 10 * 0.9);
});

test('speed factor: a twice-as-fast instance takes about half the time', async () => {
  const slowSim = await sim({ decodeStepMs: 10, prefillMsPerToken: 0 });
  const fastSim = await sim({ decodeStepMs: 10, prefillMsPerToken: 0, speed: 2 });
  const time = async (s: VllmSim) => {
    const t0 = performance.now();
    await json(await post(s, '/v1/chat/completions', chat({ max_tokens: 20 })));
    return performance.now() - t0;
  };
  // Fastest of three: robust to a loaded machine delaying one run.
  const fastest = async (x: VllmSim) => Math.min(await time(x), await time(x), await time(x));
  const [a, b] = [await fastest(slowSim), await fastest(fastSim)];
  assert.ok(b < a * 0.75, `speed 1: ${a.toFixed(1)} ms, speed 2: ${b.toFixed(1)} ms`);
});

test('CLI prints one listening line, serves, and exits 0 on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, '..', 'sim', 'vllm', 'main.ts'),
      '--model',
      MODEL,
      '--port',
      '0',
      '--decode-step-ms',
      '1',
      '--metrics-naming',
      'legacy',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d;
        const i = buf.indexOf('\n');
        if (i >= 0) resolve(buf.slice(0, i));
      });
      child.once('exit', (c) => reject(new Error(`exited ${c}`)));
    });
    const msg = JSON.parse(line);
    assert.equal(msg.event, 'listening');
    assert.equal(msg.service, 'vllm-sim');
    assert.match(msg.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(msg.url + '/health')).status, 200);
    const code = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    assert.equal(await code, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
