// Anthropic request translation, the circuit breaker's states, full-jitter backoff, shared
// Retry-After pauses and the fallback config schema.
import { AdmissionRefusal } from '../../../router/admission/refusal.ts';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { toAnthropicRequest, toOpenAIResponse, finishReason } from '../../../router/upstream/providers/anthropic-translate.ts';
import { CircuitBreaker, type BreakerState } from '../../../router/upstream/circuit-breaker.ts';
import { backoffMs, ProviderPauses } from '../../../router/upstream/retry.ts';
import { retryAfterMs } from '../../../router/upstream/providers/http.ts';
import { fallbackConfigSchema } from '../../../router/upstream/fallback-config.ts';
import { triggerOf } from '../../../router/upstream/fallback-dispatch.ts';
import { errors } from '../../../common/errors.ts';

describe('OpenAI -> Anthropic request', () => {
  it('moves system messages, requires max_tokens, maps stop/temperature/top_p/tools/tool results/images', () => {
    const out = toAnthropicRequest(
      {
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'developer', content: [{ type: 'text', text: 'No emojis.' }] },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Weather?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
          },
          { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
        ],
        stop: 'END',
        temperature: 1.7,
        top_p: 0.9,
        stream: true,
        user: 'u1',
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: 'weather',
              parameters: { type: 'object', properties: { city: { type: 'string' } } },
            },
          },
        ],
        tool_choice: 'required',
        parallel_tool_calls: false,
      },
      { model: 'claude-haiku-4-5', defaultMaxTokens: 777 },
    );
    assert.equal(out.system, 'You are terse.\n\nNo emojis.');
    assert.equal(out.max_tokens, 777);
    assert.deepEqual(out.stop_sequences, ['END']);
    assert.equal(out.temperature, 1);
    assert.equal(out.top_p, 0.9);
    assert.deepEqual(out.metadata, { user_id: 'u1' });
    assert.deepEqual(out.tool_choice, { type: 'any', disable_parallel_tool_use: true });
    assert.deepEqual(out.tools, [
      { name: 'get_weather', description: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
    ]);
    const msgs = out.messages as { role: string; content: Record<string, unknown>[] }[];
    assert.deepEqual(
      msgs.map((m) => m.role),
      ['user', 'assistant', 'user'],
    );
    assert.deepEqual(msgs[0]!.content[1], { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } });
    assert.deepEqual(msgs[1]!.content[0], { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } });
    assert.deepEqual(msgs[2]!.content[0], { type: 'tool_result', tool_use_id: 'call_1', content: 'sunny' });
  });

  it('uses max_completion_tokens / max_tokens when given, and named tool choice', () => {
    assert.equal(toAnthropicRequest({ messages: [], max_tokens: 5 }, { model: 'm', defaultMaxTokens: 9 }).max_tokens, 5);
    assert.equal(
      toAnthropicRequest({ messages: [], max_completion_tokens: 6, max_tokens: 5 }, { model: 'm', defaultMaxTokens: 9 }).max_tokens,
      6,
    );
    const t = toAnthropicRequest(
      { messages: [], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'f' } } },
      { model: 'm', defaultMaxTokens: 9 },
    );
    assert.deepEqual(t.tool_choice, { type: 'tool', name: 'f' });
  });

  it('Anthropic -> OpenAI response with tool calls, stop reasons and usage', () => {
    const r = toOpenAIResponse({
      id: 'msg_1',
      model: 'claude-x',
      content: [
        { type: 'text', text: 'ok' },
        { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } },
      ],
      stop_reason: 'tool_use',
      usage: { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: 2 },
    }) as {
      choices: { message: { content: string; tool_calls: { function: { arguments: string } }[] }; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    assert.equal(r.choices[0]!.message.content, 'ok');
    assert.equal(r.choices[0]!.message.tool_calls[0]!.function.arguments, '{"a":1}');
    assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [5, 4]);
    assert.deepEqual(
      ['end_turn', 'stop_sequence', 'max_tokens', 'tool_use', 'refusal', 'pause_turn', 'model_context_window_exceeded'].map(finishReason),
      ['stop', 'stop', 'length', 'tool_calls', 'content_filter', 'stop', 'length'],
    );
  });
});

describe('circuit breaker', () => {
  const make = () => {
    let now = 0;
    const moves: string[] = [];
    const b = new CircuitBreaker(
      'provider:x',
      { windowMs: 1_000, minRequests: 4, errorRate: 0.5, openMs: 500, halfOpenProbes: 2, closeAfterSuccesses: 2 },
      (_n, from: BreakerState, to: BreakerState) => moves.push(`${from}->${to}`),
      () => now,
    );
    return { b, moves, tick: (ms: number) => (now += ms) };
  };

  it('opens on the rolling error rate, half-opens with bounded probes, closes after N successes', () => {
    const { b, moves, tick } = make();
    b.tryAcquire()!.success();
    b.tryAcquire()!.failure();
    b.tryAcquire()!.success();
    assert.equal(b.state, 'closed'); // 3 < minRequests
    b.tryAcquire()!.failure();
    assert.equal(b.state, 'open'); // 2/4 failed
    assert.equal(b.tryAcquire(), undefined);
    tick(500);
    assert.equal(b.state, 'half_open');
    const p1 = b.tryAcquire()!;
    const p2 = b.tryAcquire()!;
    assert.equal(b.tryAcquire(), undefined, 'only two probes at a time');
    p1.success();
    assert.equal(b.state, 'half_open');
    p2.success();
    assert.equal(b.state, 'closed');
    assert.deepEqual(moves, ['closed->open', 'open->half_open', 'half_open->closed']);
  });

  it('a failed probe opens it again; old outcomes leave the window', () => {
    const { b, tick } = make();
    for (let i = 0; i < 4; i++) b.tryAcquire()!.failure();
    tick(600);
    b.tryAcquire()!.failure();
    assert.equal(b.state, 'open');
    tick(600);
    b.tryAcquire()!.success();
    b.tryAcquire()!.success();
    assert.equal(b.state, 'closed');
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    tick(1_100);
    b.tryAcquire()!.failure();
    b.tryAcquire()!.success();
    assert.equal(b.state, 'closed', 'the first two failures fell out of the window');
  });

  it('a released permit (client went away) does not count', () => {
    const { b } = make();
    for (let i = 0; i < 10; i++) b.tryAcquire()!.release();
    assert.equal(b.state, 'closed');
  });
});

describe('retry', () => {
  it('full jitter: delay in [0, min(cap, base * 2^(n-1)))', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1_000 };
    assert.equal(
      backoffMs(1, o, () => 0.999),
      99,
    );
    assert.equal(
      backoffMs(3, o, () => 0.5),
      200,
    );
    assert.equal(
      backoffMs(10, o, () => 0.999),
      999,
    );
    assert.equal(
      backoffMs(2, o, () => 0),
      0,
    );
  });

  it('a pause is shared and never shortened', () => {
    let now = 0;
    const p = new ProviderPauses(() => now);
    p.pause('openai', 1_000);
    p.pause('openai', 200);
    now = 500;
    assert.equal(p.remainingMs('openai'), 500);
    assert.equal(p.remainingMs('anthropic'), 0);
    now = 1_000;
    assert.equal(p.remainingMs('openai'), 0);
  });

  it('Retry-After as seconds, HTTP date, retry-after-ms', () => {
    assert.equal(retryAfterMs({ 'retry-after': '2' }), 2_000);
    assert.equal(retryAfterMs({ 'retry-after-ms': '150', 'retry-after': '2' }), 150);
    assert.equal(retryAfterMs({ 'retry-after': new Date(10_000).toUTCString() }, 7_000), 3_000);
    assert.equal(retryAfterMs({}), undefined);
  });
});

describe('fallback config and triggers', () => {
  it('rejects a chain naming an unknown provider, and a provider without credentials source', () => {
    assert.equal(fallbackConfigSchema.safeParse({ chains: { m: ['local', 'nope:x'] } }).success, false);
    assert.equal(fallbackConfigSchema.safeParse({ providers: { openai: { kind: 'openai' } } }).success, false);
    const ok = fallbackConfigSchema.parse({
      providers: { openai: { kind: 'openai', apiKeyEnv: 'K' } },
      chains: { m: ['local', 'openai:gpt-4o-mini'] },
    });
    assert.deepEqual(ok.triggers, ['no_ready_node', 'lane_saturated', 'node_failed', 'breaker_open']);
    assert.deepEqual(ok.lanes, ['critical', 'standard']);
  });

  it('classifies pool failures into triggers; client errors never fall back', () => {
    assert.equal(triggerOf(errors.overloaded('x', 1, 'no_ready_node')), 'no_ready_node');
    assert.equal(triggerOf(errors.overloaded('x', 1, 'breaker_open')), 'breaker_open');
    assert.equal(triggerOf(errors.upstream('x', 'node_unavailable')), 'node_failed');
    assert.equal(triggerOf(new AdmissionRefusal('standard', 'queue_timeout', 'x', 1)), 'lane_saturated');
    assert.equal(triggerOf(errors.invalidRequest('bad')), undefined);
  });
});
