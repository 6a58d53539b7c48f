// The provider simulator speaks the captured wire formats: same SSE event types in the same
// order, same field names, same error shapes as test/fixtures/{anthropic,openai,azure-openai}.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import { startProviderSim } from '../../sim/providers/server.ts';

const FIX = join(import.meta.dirname, '../../fixtures');
const KEY = 'sim-key-123';
type Sim = Awaited<ReturnType<typeof startProviderSim>>;
let sim: Sim;
before(async () => {
  sim = await startProviderSim({ apiKey: KEY, chunkDelayMs: 0 });
});
after(() => sim.close());

function parseSse(text: string): { event?: string; data: string }[] {
  const out: { event?: string; data: string }[] = [];
  const p = createParser({ onEvent: (m) => out.push({ event: m.event, data: m.data }) });
  p.feed(text);
  return out;
}
const keys = (o: unknown) => Object.keys(o as object).sort();
const post = (path: string, headers: Record<string, string>, body: unknown) =>
  fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const anth = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };

describe('provider simulator against the captures', () => {
  it('Anthropic text stream: the captured event sequence and field names', async () => {
    const fixture = parseSse(readFileSync(join(FIX, 'anthropic/messages-stream-text.claude-sonnet-4-5.sse'), 'utf8'));
    const res = await post('/v1/messages', anth, {
      model: 'claude-haiku-4-5',
      max_tokens: 3,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const got = parseSse(await res.text());
    const collapse = (evs: { event?: string }[]) => evs.map((e) => e.event).filter((e, i, a) => e !== a[i - 1]);
    assert.deepEqual(collapse(got), collapse(fixture));
    for (const type of ['message_start', 'content_block_start', 'content_block_delta', 'message_delta']) {
      const f = JSON.parse(fixture.find((e) => e.event === type)!.data) as Record<string, Record<string, unknown>>;
      const g = JSON.parse(got.find((e) => e.event === type)!.data) as Record<string, Record<string, unknown>>;
      assert.deepEqual(keys(g), keys(f), type);
      if (type === 'message_start')
        assert.deepEqual(
          keys(g.message!.usage).filter((k) => k !== 'inference_geo'),
          keys(f.message!.usage).filter((k) => k !== 'inference_geo'),
        );
      if (type === 'message_delta') assert.deepEqual(keys(g.usage), keys(f.usage));
    }
    for (const e of got) assert.equal((JSON.parse(e.data) as { type: string }).type, e.event);
  });

  it('Anthropic tool use: tool_use block, empty first partial_json, then pieces, stop_reason tool_use', async () => {
    const fixture = readFileSync(join(FIX, 'anthropic/messages-stream-tool-use.claude-haiku-4-5.chunks.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const res = await post('/v1/messages', anth, {
      model: 'm',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ name: 'json', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      stream: true,
    });
    const got = parseSse(await res.text()).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const start = got.find((e) => e.type === 'content_block_start')!;
    assert.deepEqual(keys(start.content_block), keys(fixture[1]!.content_block));
    const deltas = got.filter((e) => e.type === 'content_block_delta').map((e) => (e.delta as { partial_json: string }).partial_json);
    assert.equal(deltas[0], '');
    assert.deepEqual(JSON.parse(deltas.join('')), { city: 'Paris' });
    assert.equal((got.find((e) => e.type === 'message_delta')!.delta as { stop_reason: string }).stop_reason, 'tool_use');
  });

  it('Anthropic errors: the captured shape; 429 carries retry-after; 529 overloaded', async () => {
    const fixture = JSON.parse(readFileSync(join(FIX, 'anthropic/error-429-rate-limit-account.json'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    sim.setFaults({ rateLimit: { count: 1, retryAfterSeconds: 2 } });
    const r = await post('/v1/messages', anth, { model: 'm', max_tokens: 5, messages: [] });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '2');
    const b = (await r.json()) as Record<string, Record<string, unknown>>;
    assert.deepEqual(keys(b), keys(fixture));
    assert.deepEqual(b.error, fixture.error);
    sim.setFaults({ serverError: { count: 1, status: 529 } });
    const o = await post('/v1/messages', anth, { model: 'm', max_tokens: 5, messages: [] });
    assert.equal(o.status, 529);
    assert.deepEqual(
      ((await o.json()) as { error: unknown }).error,
      (JSON.parse(readFileSync(join(FIX, 'anthropic/error-529-overloaded.with-request-id.json'), 'utf8')) as { error: unknown }).error,
    );
    assert.equal((await post('/v1/messages', { ...anth, 'x-api-key': 'wrong' }, { model: 'm', max_tokens: 5, messages: [] })).status, 401);
    assert.equal((await post('/v1/messages', anth, { model: 'm', messages: [] })).status, 400, 'max_tokens is required');
  });

  it('OpenAI tool-call stream: the captured chunk fields, usage chunk, [DONE]', async () => {
    const fixture = parseSse(readFileSync(join(FIX, 'openai/chat-stream-tool-call-include-usage.gpt-4o-mini.sse'), 'utf8'));
    const res = await post(
      '/v1/chat/completions',
      { authorization: `Bearer ${KEY}` },
      {
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'x' }],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { country: { type: 'string' } } } } }],
        stream: true,
        stream_options: { include_usage: true },
      },
    );
    const got = parseSse(await res.text());
    assert.equal(got.at(-1)!.data, '[DONE]');
    assert.equal(fixture.at(-1)!.data, '[DONE]');
    const fc = fixture.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const gc = got.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const strip = (k: string[]) => k.filter((x) => x !== 'obfuscation' && x !== 'service_tier');
    assert.deepEqual(strip(keys(gc[1])), strip(keys(fc[1])));
    assert.deepEqual(
      keys((gc[1]!.choices as { delta: { tool_calls: unknown[] } }[])[0]!.delta.tool_calls[0]),
      keys((fc[0]!.choices as { delta: { tool_calls: unknown[] } }[])[0]!.delta.tool_calls[0]),
    );
    assert.deepEqual(gc.at(-1)!.choices, []);
    assert.deepEqual(
      keys(gc.at(-1)!.usage).filter((k) => !k.endsWith('_details')),
      keys(fc.at(-1)!.usage).filter((k) => !k.endsWith('_details')),
    );
  });

  it('Azure: deployment path with api-version and api-key; first chunk is filter-only like the capture', async () => {
    const fixture = JSON.parse(
      readFileSync(join(FIX, 'azure-openai/chat-stream-model-router.gpt-5-nano.chunks.jsonl'), 'utf8').split('\n')[0]!,
    ) as Record<string, unknown>;
    const res = await post(
      '/openai/deployments/dep1/chat/completions?api-version=2024-10-21',
      { 'api-key': KEY },
      { messages: [{ role: 'user', content: 'x' }], stream: true },
    );
    const got = parseSse(await res.text());
    const first = JSON.parse(got[0]!.data) as Record<string, unknown>;
    assert.deepEqual(keys(first), keys(fixture));
    assert.equal(
      (await post('/openai/deployments/dep1/chat/completions', { 'api-key': KEY }, { messages: [] })).status,
      404,
      'api-version is required',
    );
    assert.equal(sim.requests.at(-2)!.model, 'dep1');
  });
});
