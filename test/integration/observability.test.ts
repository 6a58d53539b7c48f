// Traces and request logs from real router + agent processes: a real OTLP/HTTP receiver (JSON)
// started here gets the spans; the router's request log line is read from its output.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { startReceiver, type ExportedSpan } from '../helpers/otlp-receiver.ts';
import { defaultEmbeddingsConfig } from '../../router/embed/config.ts';

const PROMPT = 'PURPLE-ELEPHANT-PROMPT-7731';
const KEY = 'sk-obs-SECRETKEY-4242';

async function chat(stack: Stack, requestId: string, stream: boolean): Promise<Response> {
  return fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'x-request-id': requestId },
    body: JSON.stringify({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: 8,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    }),
  });
}

function requestLine(stack: Stack, requestId: string): Record<string, unknown> | undefined {
  // (waitFor returns only a truthy value: callers may treat the result as defined)
  for (const l of stack.logs) {
    if (!l.includes(requestId) || !l.includes('"msg":"request"')) continue;
    return JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>;
  }
  return undefined;
}

describe('traces and request logs', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let stack: Stack;

  before(async () => {
    receiver = await startReceiver();
    const env = { OTEL_BSP_SCHEDULE_DELAY: '100' };
    stack = await startStack({
      sims: [{ id: 'sim-a' }, { id: 'sim-b' }],
      agents: [
        { id: 'gpu-a', sim: 'sim-a', env },
        { id: 'gpu-b', sim: 'sim-b', env },
      ],
      routerEnv: env,
      logLevel: 'info',
      router: { embeddings: defaultEmbeddingsConfig() },
      config: { telemetry: { otlpEndpoint: receiver.url } },
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });

  after(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  it('exports one trace per request across router and agent, with GenAI attributes and no prompt', async () => {
    const res = await chat(stack, 'req-obs-trace-1', true);
    assert.equal(res.status, 200);
    await res.text();
    const trace = await waitFor(
      (): { server: ExportedSpan; all: ExportedSpan[] } | undefined => {
        const server = receiver.spans().find((s) => s.attrs['icp.request.id'] === 'req-obs-trace-1' && s.kind === 2);
        if (!server) return undefined;
        const all = receiver.spans().filter((s) => s.traceId === server.traceId);
        return all.some((s) => s.service === 'icp-node-agent') && all.some((s) => s.name === 'schedule') ? { server, all } : undefined;
      },
      15_000,
      100,
    );
    const { server, all } = trace!;
    const byId = new Map(all.map((s) => [s.spanId, s]));
    assert.equal(server.service, 'icp-router');
    assert.equal(server.name, 'POST /v1/chat/completions');
    assert.equal(server.attrs['gen_ai.operation.name'], 'chat');
    assert.equal(server.attrs['gen_ai.request.model'], DEFAULT_MODEL);
    assert.equal(server.attrs['gen_ai.response.model'], DEFAULT_MODEL);
    assert.equal(server.attrs['gen_ai.request.max_tokens'], 8);
    assert.ok(Number(server.attrs['gen_ai.usage.input_tokens']) > 0);
    assert.ok(Number(server.attrs['gen_ai.usage.output_tokens']) > 0);
    assert.equal(server.attrs['http.response.status_code'], 200);

    const schedule = all.find((s) => s.name === 'schedule')!;
    assert.equal(schedule.parentSpanId, server.spanId);
    const chosen = schedule.attrs['icp.node.id'];
    assert.ok(chosen === 'gpu-a' || chosen === 'gpu-b', `chosen node ${String(chosen)}`);
    assert.ok(
      Object.keys(schedule.attrs).some((k) => k.startsWith('icp.schedule.score.')),
      'scores recorded',
    );

    const dispatch = all.find((s) => s.name === `dispatch ${String(chosen)}`)!;
    assert.ok(dispatch, 'dispatch span');
    assert.equal(dispatch.parentSpanId, server.spanId);
    assert.equal(dispatch.attrs['icp.attempt'], 1);

    const engine = all.find((s) => s.service === 'icp-node-agent')!;
    assert.equal(engine.parentSpanId, dispatch.spanId, 'agent span is a child of the router dispatch span');
    assert.equal(engine.name, `chat ${DEFAULT_MODEL}`);
    assert.equal(engine.attrs['gen_ai.provider.name'], 'vllm');
    assert.equal(engine.attrs['gen_ai.request.model'], DEFAULT_MODEL);
    assert.ok(Number(engine.attrs['gen_ai.usage.output_tokens']) > 0);
    assert.ok(byId.has(engine.parentSpanId!));

    const payload = receiver.bodies.join('\n');
    assert.ok(!payload.includes(PROMPT), 'prompt text is never exported');
    assert.ok(!payload.includes(KEY), 'API key is never exported');
  });

  it("continues a caller's traceparent", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': 'req-obs-tp' },
      body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
    });
    assert.equal(res.status, 200);
    await res.text();
    await waitFor(() => receiver.spans().some((s) => s.traceId === traceId && s.service === 'icp-node-agent'), 15_000, 100);
  });

  it('writes one request log line with request id and trace id, without prompt or key', async () => {
    const res = await chat(stack, 'req-obs-log-1', false);
    assert.equal(res.status, 200);
    await res.text();
    const line = (await waitFor(() => requestLine(stack, 'req-obs-log-1'), 5_000))!;
    assert.equal(line.level, 30);
    assert.equal(line.requestId, 'req-obs-log-1');
    assert.match(String(line.traceId), /^[0-9a-f]{32}$/);
    assert.equal(line.model, DEFAULT_MODEL);
    assert.equal(line.status, 200);
    assert.equal(line.route, '/v1/chat/completions');
    assert.equal(line.backend, 'node');
    assert.ok(typeof line.durationMs === 'number');
    assert.ok(Number(line.completionTokens) > 0);
    const raw = stack.logs.join('\n');
    assert.ok(!raw.includes(PROMPT), 'no prompt in any log');
    assert.ok(!raw.includes(KEY), 'no key in any log');
  });
  it('embeddings and rerank requests get a SERVER span with the embedder as its child, and one request log line, without the texts', async () => {
    const embed = await fetch(`${stack.routerUrl}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'x-request-id': 'req-obs-embed-1' },
      body: JSON.stringify({ model: 'glove-100d-embed', input: [PROMPT, 'a second text'] }),
    });
    assert.equal(embed.status, 200);
    const rerank = await fetch(`${stack.routerUrl}/v1/rerank`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-obs-rerank-1' },
      body: JSON.stringify({ model: 'glove-100d-rerank', query: PROMPT, documents: ['one', 'two'] }),
    });
    assert.equal(rerank.status, 200);
    const bad = await fetch(`${stack.routerUrl}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-obs-embed-404' },
      body: JSON.stringify({ model: 'no-such-embedder', input: 'x' }),
    });
    assert.equal(bad.status, 404);

    for (const [id, route, model, op] of [
      ['req-obs-embed-1', '/v1/embeddings', 'glove-100d-embed', 'embeddings'],
      ['req-obs-rerank-1', '/v1/rerank', 'glove-100d-rerank', 'rerank'],
    ] as const) {
      const line = (await waitFor(() => requestLine(stack, id), 5_000))!;
      assert.equal(line.route, route);
      assert.equal(line.model, model);
      assert.equal(line.status, 200);
      assert.equal(line.backend, 'router');
      assert.ok(Number(line.promptTokens) > 0, `${id}: prompt tokens`);
      assert.match(String(line.traceId), /^[0-9a-f]{32}$/);
      const { server, child } = (await waitFor(
        () => {
          const server = receiver.spans().find((s) => s.attrs['icp.request.id'] === id && s.kind === 2);
          const child = server && receiver.spans().find((s) => s.parentSpanId === server.spanId && s.name === `${op} ${model}`);
          return server && child ? { server, child } : undefined;
        },
        15_000,
        100,
      ))!;
      assert.equal(server.name, `POST ${route}`);
      assert.equal(server.traceId, line.traceId);
      assert.equal(server.attrs['gen_ai.operation.name'], op);
      assert.equal(server.attrs['http.response.status_code'], 200);
      assert.ok(Number(child.attrs['gen_ai.usage.input_tokens']) > 0);
    }
    const notFound = (await waitFor(() => requestLine(stack, 'req-obs-embed-404'), 5_000))!;
    assert.equal(notFound.status, 404);
    const raw = stack.logs.join('\n') + receiver.bodies.join('\n');
    assert.ok(!raw.includes(PROMPT), 'no input text in any log or span');
    assert.ok(!raw.includes(KEY), 'no key in any log or span');
  });
});

describe('request logs with logging.logContent on', () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({
      sims: [{ id: 'sim-a' }],
      agents: [{ id: 'gpu-a', sim: 'sim-a' }],
      logLevel: 'info',
      config: { logging: { level: 'info', logContent: true } },
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  it('carries the prompt and completion, still not the key; no trace id while tracing is off', async () => {
    const res = await chat(stack, 'req-obs-content-1', true);
    assert.equal(res.status, 200);
    await res.text();
    const line = (await waitFor(() => requestLine(stack, 'req-obs-content-1'), 5_000))!;
    assert.ok(JSON.stringify(line.prompt).includes(PROMPT), 'prompt logged when logContent is on');
    assert.equal(typeof line.completion, 'string');
    assert.ok(String(line.completion).length > 0);
    assert.equal(line.traceId, undefined);
    assert.ok(!stack.logs.join('\n').includes(KEY));
  });
});
