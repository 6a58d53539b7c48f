// Hosted-provider fallback end to end, the official openai SDK as the client: a GPU node, then
// no GPU node (OpenAI simulator serves), OpenAI failing (Anthropic simulator serves, streaming
// and tool calls included), the OpenAI breaker opening, probing and closing, a 429 Retry-After
// honoured across requests, and no credential in any process's output. (Residency by key id and
// tenant needs verified keys: test/security/key-id-policy.test.ts, with auth on.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startStack, waitFor, modelOwner, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const OPENAI_KEY = 'sk-test-openai-4b1d9c0e7f2a';
const ANTHROPIC_KEY = 'sk-ant-test-93c5e1aa0d7b';
const TOOLS = [
  {
    type: 'function' as const,
    function: {
      name: 'get_weather',
      description: 'Weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];

type SimRequest = { at: number; api: string; model: string; status: number };

describe('fallback to hosted providers (openai SDK end to end)', () => {
  let stack: Stack;
  let client: OpenAI;
  const sim = (id: string) => stack.providerSims.get(id)!.url;
  const faults = async (id: string, f: Record<string, unknown>) => {
    const r = await fetch(`${sim(id)}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(f),
    });
    assert.equal(r.status, 200);
  };
  const requests = async (id: string) => ((await (await fetch(`${sim(id)}/sim/state`)).json()) as { requests: SimRequest[] }).requests;
  const metrics = async () => (await fetch(`${stack.routerUrl}/metrics`)).text();
  const chat = (extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}, c = client) =>
    c.chat.completions
      .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5, ...extra })
      .withResponse();

  before(async () => {
    stack = await startStack({
      sims: [{ id: 'sim-a' }],
      agents: [{ id: 'gpu-a', sim: 'sim-a' }],
      providerSims: [
        { id: 'openai-sim', apiKey: OPENAI_KEY },
        { id: 'anthropic-sim', apiKey: ANTHROPIC_KEY },
      ],
      routerEnv: { ICP_TEST_OPENAI_KEY: OPENAI_KEY, ICP_TEST_ANTHROPIC_KEY: ANTHROPIC_KEY },
      logLevel: 'info',
      maxLogLines: 100_000,
      router: ({ providerSims }) => ({
        fallback: {
          providers: {
            openai: {
              kind: 'openai',
              baseUrl: `${providerSims.get('openai-sim')!.url}/v1`,
              apiKeyEnv: 'ICP_TEST_OPENAI_KEY',
              firstByteTimeoutMs: 3_000,
            },
            anthropic: { kind: 'anthropic', baseUrl: providerSims.get('anthropic-sim')!.url, apiKeyEnv: 'ICP_TEST_ANTHROPIC_KEY' },
          },
          chains: {
            [DEFAULT_MODEL]: ['local', 'openai:gpt-4o-mini', 'anthropic:claude-haiku-4-5'],
            'gpt-direct': ['openai:gpt-4o-mini'],
          },
          breaker: { windowMs: 10_000, minRequests: 3, errorRate: 0.5, openMs: 1_000, halfOpenProbes: 1, closeAfterSuccesses: 2 },
          retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxPauseWaitMs: 3_000 },
        },
      }),
    });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'key-any', maxRetries: 0 });
    await waitFor(async () => (await modelOwner(stack.routerUrl, DEFAULT_MODEL)) === 'gpu-pool', 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  it('serves from the GPU pool while a node is up (x-backend node:<id>)', async () => {
    const { data, response } = await chat();
    assert.equal(response.headers.get('x-backend'), 'node:gpu-a');
    assert.equal(data.model, DEFAULT_MODEL);
  });

  it('all GPU nodes down: the OpenAI simulator serves, JSON and streaming', async () => {
    stack.agents.get('gpu-a')!.kill('SIGKILL');
    // The model stays listed: its chain still serves it, owned by the first hosted backend.
    await waitFor(async () => (await modelOwner(stack.routerUrl, DEFAULT_MODEL)) === 'openai:gpt-4o-mini', 10_000);
    const { data, response } = await chat();
    assert.equal(response.headers.get('x-backend'), 'openai:gpt-4o-mini');
    assert.equal(data.model, 'gpt-4o-mini');
    assert.ok(data.choices[0]!.message.content);
    assert.ok(data.usage!.completion_tokens > 0);
    const { data: stream, response: sr } = await client.chat.completions
      .create({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 6,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    assert.equal(sr.headers.get('x-backend'), 'openai:gpt-4o-mini');
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.ok(text.length > 0);
    assert.equal(usage?.completion_tokens, 6);
  });

  it('OpenAI failing: the chain continues to Anthropic, JSON, streaming and streamed tool calls', async () => {
    await faults('openai-sim', { serverError: { count: -1, status: 500 } });
    const { data, response } = await chat({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ],
    });
    assert.equal(response.headers.get('x-backend'), 'anthropic:claude-haiku-4-5');
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'claude-haiku-4-5');
    assert.equal(data.choices[0]!.finish_reason, 'length');
    assert.ok(data.choices[0]!.message.content);

    const stream = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 40,
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(text.split(' ').length > 3);
    assert.equal(finish, 'stop');

    const tools = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: TOOLS,
      stream: true,
    });
    let args = '';
    let name = '';
    let id = '';
    for await (const c of tools) {
      for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
        name ||= tc.function?.name ?? '';
        id ||= tc.id ?? '';
        args += tc.function?.arguments ?? '';
      }
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(name, 'get_weather');
    assert.match(id, /^toolu_/);
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(finish, 'tool_calls');

    // The tool result goes back; Anthropic gets a tool_result block and answers in text.
    const { data: follow } = await chat({
      max_tokens: 8,
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] },
        { role: 'tool', tool_call_id: id, content: 'sunny' },
      ],
    });
    assert.ok(follow.choices[0]!.message.content);
  });

  it('the OpenAI breaker opened, probes half-open after openMs, and closes after 2 successes', async () => {
    assert.match(await metrics(), /router_circuit_breaker_state\{breaker="provider:openai"\} 2/);
    const before = (await requests('openai-sim')).length;
    const { response } = await chat();
    assert.equal(response.headers.get('x-backend'), 'anthropic:claude-haiku-4-5');
    assert.equal((await requests('openai-sim')).length, before, 'an open breaker sends nothing to the provider');
    await faults('openai-sim', {});
    // A lower bound: past the breaker's 1 s open period, so the next request is its half-open probe.
    await new Promise((r) => setTimeout(r, 1_050));
    const probe = await chat();
    assert.equal(probe.response.headers.get('x-backend'), 'openai:gpt-4o-mini');
    assert.match(await metrics(), /router_circuit_breaker_state\{breaker="provider:openai"\} 1/);
    await chat();
    const m = await metrics();
    assert.match(m, /router_circuit_breaker_state\{breaker="provider:openai"\} 0/);
    for (const to of ['open', 'half_open', 'closed'])
      assert.match(m, new RegExp(`router_circuit_breaker_transitions_total\\{breaker="provider:openai",to="${to}"\\} 1`));
    assert.match(m, /router_fallback_requests_total\{provider="anthropic",trigger="no_ready_node",outcome="served"\}/);
    assert.ok(stack.logs.some((l) => l.includes('circuit breaker transition')));
  });

  it('a 429 Retry-After pauses the provider for every request (measured)', async () => {
    await faults('openai-sim', { rateLimit: { count: 1, retryAfterSeconds: 1 } });
    const t0 = Date.now();
    const a = chat({ model: 'gpt-direct' });
    // b starts 200 ms after a, inside the 1 s pause a's 429 starts: 800 ms of headroom.
    await new Promise((r) => setTimeout(r, 200));
    const b = chat({ model: 'gpt-direct' });
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.response.headers.get('x-backend'), 'openai:gpt-4o-mini');
    assert.equal(rb.response.headers.get('x-backend'), 'openai:gpt-4o-mini');
    const reqs = (await requests('openai-sim')).filter((r) => r.at >= t0);
    const limited = reqs.find((r) => r.status === 429)!;
    const after429 = reqs.filter((r) => r.at > limited.at);
    assert.equal(reqs.length, 3, 'one 429, then exactly one call per request: the second request never hit the limit');
    const waited = Math.min(...after429.map((r) => r.at)) - limited.at;
    assert.ok(waited >= 990, `waited ${waited} ms`);
    assert.ok(waited < 1_500, `waited ${waited} ms`);
  });

  it('no credential appears in any process output or in the config file', async () => {
    const all = stack.logs.join('\n') + readFileSync(stack.configFile, 'utf8');
    for (const key of [OPENAI_KEY, ANTHROPIC_KEY]) {
      assert.ok(!all.includes(key), 'a credential leaked');
      assert.ok(!all.includes(key.slice(0, 12)), 'a credential prefix leaked');
    }
    assert.ok(stack.logs.length > 10, 'the processes did log');
  });
});
