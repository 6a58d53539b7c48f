// Every copied provider capture (test/fixtures/{openai,azure-openai,anthropic}) goes through the
// real provider code: a loopback server replays the bytes, the provider turns them into the
// router's event stream, and the result is what an OpenAI client expects.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { OpenAIProvider } from '../../../router/upstream/providers/openai.ts';
import { AzureOpenAIProvider } from '../../../router/upstream/providers/azure-openai.ts';
import { AnthropicProvider } from '../../../router/upstream/providers/anthropic.ts';
import { Credential } from '../../../router/upstream/providers/credentials.ts';
import { anthropicErrorToOpenAI } from '../../../router/upstream/providers/anthropic-translate.ts';
import { ProviderError, type Provider, type UpstreamEvent } from '../../../router/upstream/providers/types.ts';

const FIX = join(import.meta.dirname, '../../fixtures');
const KEY = 'sk-fixture-secret-0123456789';
const read = (dir: string, f: string) => readFileSync(join(FIX, dir, f), 'utf8');
const jsonlAsSse = (text: string, done: boolean) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => `data: ${l}\n\n`)
    .join('') + (done ? 'data: [DONE]\n\n' : '');

let reply: { status: number; type: string; body: string; headers?: Record<string, string> } = {
  status: 200,
  type: 'text/event-stream',
  body: '',
};
let lastRequest: { url: string; headers: Record<string, unknown>; body: Record<string, unknown> } | undefined;
let server: Server;
let base = '';

before(async () => {
  server = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      lastRequest = { url: req.url ?? '', headers: req.headers, body: JSON.parse(b || '{}') as Record<string, unknown> };
      res.writeHead(reply.status, { 'content-type': reply.type, ...reply.headers });
      res.end(reply.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const cred = () => Credential.load('t', { apiKeyEnv: 'K' }, { K: KEY });
const signal = new AbortController().signal;
async function run(p: Provider, body: Record<string, unknown>, model = 'm') {
  const d = await p.generate({
    requestId: 'r1',
    operation: 'CHAT_COMPLETIONS',
    model,
    body,
    deadline: new Date(Date.now() + 10_000),
    signal,
  });
  const events: UpstreamEvent[] = [d.first];
  for (let r = await d.rest.next(); !r.done; r = await d.rest.next()) events.push(r.value);
  return {
    backend: d.backend,
    events,
    chunks: events
      .filter((e) => e.event === 'chunkJson')
      .map(
        (e) =>
          JSON.parse(e.chunkJson!) as {
            choices: {
              delta: { content?: string; tool_calls?: { index: number; id?: string; function: { name?: string; arguments?: string } }[] };
              finish_reason: string | null;
            }[];
            usage?: unknown;
          },
      ),
  };
}
function assemble(chunks: Awaited<ReturnType<typeof run>>['chunks']) {
  let text = '';
  const args = new Map<number, string>();
  const names = new Map<number, string>();
  let finish: string | null = null;
  for (const c of chunks) {
    for (const ch of c.choices) {
      text += ch.delta.content ?? '';
      for (const tc of ch.delta.tool_calls ?? []) {
        if (tc.function.name) names.set(tc.index, tc.function.name);
        args.set(tc.index, (args.get(tc.index) ?? '') + (tc.function.arguments ?? ''));
      }
      finish = ch.finish_reason ?? finish;
    }
  }
  return { text, args, names, finish };
}

describe('OpenAI and Azure captures through the OpenAI provider', () => {
  const openai = () => new OpenAIProvider({ name: 'openai', baseUrl: `${base}/v1`, credential: cred(), firstByteTimeoutMs: 5_000 });

  it('relays a tool-call stream; arguments reassemble; usage becomes the final event', async () => {
    reply = { status: 200, type: 'text/event-stream', body: read('openai', 'chat-stream-tool-call-include-usage.gpt-4o-mini.sse') };
    const r = await run(openai(), { messages: [{ role: 'user', content: 'x' }], stream: true }, 'gpt-4o-mini');
    assert.equal(r.backend, 'openai:gpt-4o-mini');
    assert.equal(lastRequest!.url, '/v1/chat/completions');
    assert.equal(lastRequest!.headers.authorization, `Bearer ${KEY}`);
    assert.deepEqual(lastRequest!.body.stream_options, { include_usage: true });
    const a = assemble(r.chunks);
    assert.deepEqual(JSON.parse(a.args.get(0)!), { country: 'UK' });
    assert.equal(a.finish, 'tool_calls');
    const last = r.events.at(-1)!;
    assert.equal(last.event, 'usage');
    assert.ok(last.usage!.promptTokens > 0);
  });

  for (const f of [
    'chat-stream-text-after-tool-result-include-usage.gpt-4o-mini.sse',
    'chat-stream-text-include-usage.gpt-4.1-nano.chunks.jsonl',
  ]) {
    it(`relays ${f} byte for byte`, async () => {
      const raw = read('openai', f);
      reply = { status: 200, type: 'text/event-stream', body: f.endsWith('.jsonl') ? jsonlAsSse(raw, true) : raw };
      const r = await run(openai(), { messages: [], stream: true });
      const a = assemble(r.chunks);
      assert.ok(a.text.length > 0);
      assert.equal(a.finish, 'stop');
      assert.equal(r.events.at(-1)!.event, 'usage');
      assert.ok(r.events.at(-1)!.usage!.completionTokens > 0);
    });
  }

  it('drops a stream that ends without [DONE] with an error event (mid-stream drop)', async () => {
    const raw = read('openai', 'chat-stream-text-include-usage.gpt-4.1-nano.chunks.jsonl').split('\n').slice(0, 5).join('\n');
    reply = { status: 200, type: 'text/event-stream', body: jsonlAsSse(raw, false) };
    const r = await run(openai(), { messages: [], stream: true });
    assert.equal(r.events.at(-1)!.event, 'error');
  });

  for (const f of ['error-400-unsupported-parameter.json', 'error-max-tokens-per-request-embeddings.json']) {
    it(`passes the 400 ${f} through in OpenAI's shape, as the client's fault`, async () => {
      const body = read('openai', f);
      reply = { status: 400, type: 'application/json', body };
      await assert.rejects(run(openai(), { messages: [] }), (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.failure, 'client');
        assert.equal(e.apiError.message, (JSON.parse(body) as { error: { message: string } }).error.message);
        return true;
      });
    });
  }

  it('Azure: deployment URL, api-version, api-key; the filter-only first chunk is dropped', async () => {
    reply = {
      status: 200,
      type: 'text/event-stream',
      body: jsonlAsSse(read('azure-openai', 'chat-stream-model-router.gpt-5-nano.chunks.jsonl'), true),
    };
    const p = new AzureOpenAIProvider({
      name: 'azure',
      endpoint: base,
      apiVersion: '2024-12-01-preview',
      deployments: { 'gpt-5-nano': 'router-dep' },
      credential: cred(),
      firstByteTimeoutMs: 5_000,
    });
    const r = await run(p, { messages: [], stream: true }, 'gpt-5-nano');
    assert.equal(lastRequest!.url, '/openai/deployments/router-dep/chat/completions?api-version=2024-12-01-preview');
    assert.equal(lastRequest!.headers['api-key'], KEY);
    assert.equal(lastRequest!.headers.authorization, undefined);
    assert.ok(r.chunks.every((c) => c.choices.length > 0 || c.usage));
    assert.ok(assemble(r.chunks).text.length > 0);
  });

  it('Azure: a non-streaming answer is relayed with its usage', async () => {
    reply = {
      status: 200,
      type: 'application/json',
      body: read('azure-openai', 'chat-completion-nonstream.gpt-4o-deployment.response.json'),
    };
    const p = new AzureOpenAIProvider({
      name: 'azure',
      endpoint: base,
      apiVersion: '2024-12-01-preview',
      deployments: {},
      credential: cred(),
      firstByteTimeoutMs: 5_000,
    });
    const r = await run(p, { messages: [] }, 'gpt-4o');
    assert.equal(r.events[0]!.event, 'responseJson');
    assert.equal(r.events[1]!.event, 'usage');
    assert.ok(r.events[1]!.usage!.promptTokens > 0);
  });

  it('a 401 never echoes the provider text (it may quote the key) and moves to the next provider', async () => {
    reply = {
      status: 401,
      type: 'application/json',
      body: JSON.stringify({
        error: { message: `Incorrect API key provided: ${KEY}`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      }),
    };
    await assert.rejects(
      run(openai(), { messages: [] }),
      (e: unknown) =>
        e instanceof ProviderError && e.failure === 'next' && !e.message.includes(KEY) && !e.message.includes(KEY.slice(0, 8)),
    );
  });
});

describe('Anthropic captures through the Anthropic provider', () => {
  const anthropic = () =>
    new AnthropicProvider({
      name: 'anthropic',
      baseUrl: base,
      version: '2023-06-01',
      defaultMaxTokens: 1024,
      credential: cred(),
      firstByteTimeoutMs: 5_000,
    });

  it('text stream (padded JSON, ping) -> OpenAI chunks, finish stop, usage 20/5', async () => {
    reply = { status: 200, type: 'text/event-stream', body: read('anthropic', 'messages-stream-text.claude-sonnet-4-5.sse') };
    const r = await run(
      anthropic(),
      {
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'What is 1+1?' },
        ],
        stream: true,
      },
      'claude-sonnet-4-5',
    );
    assert.equal(lastRequest!.url, '/v1/messages');
    assert.equal(lastRequest!.headers['x-api-key'], KEY);
    assert.equal(lastRequest!.headers['anthropic-version'], '2023-06-01');
    assert.equal(lastRequest!.body.system, 'be brief');
    assert.equal(lastRequest!.body.max_tokens, 1024);
    const a = assemble(r.chunks);
    assert.equal(a.text, '2');
    assert.equal(a.finish, 'stop');
    assert.deepEqual({ ...r.events.at(-1)!.usage }, { promptTokens: 20, completionTokens: 5, cachedPromptTokens: 0, ttftSeconds: 0 });
    const first = r.chunks[0] as unknown as { id: string; object: string; model: string };
    assert.equal(first.object, 'chat.completion.chunk');
    assert.equal(first.model, 'claude-sonnet-4-5-20250929');
    assert.match(first.id, /^chatcmpl-msg_/);
  });

  for (const f of [
    'messages-stream-tool-use.claude-haiku-4-5.chunks.jsonl',
    'messages-stream-server-tool-search-then-tool-use.sse',
    'messages-stream-text.claude-sonnet-4-5.chunks.jsonl',
  ]) {
    it(`${f}: input_json_delta pieces become tool_call argument deltas`, async () => {
      const raw = read('anthropic', f);
      reply = {
        status: 200,
        type: 'text/event-stream',
        body: f.endsWith('.jsonl')
          ? raw
              .split('\n')
              .filter(Boolean)
              .map((l) => `event: ${(JSON.parse(l) as { type: string }).type}\ndata: ${l}\n\n`)
              .join('')
          : raw,
      };
      const r = await run(anthropic(), { messages: [{ role: 'user', content: 'x' }], stream: true });
      const a = assemble(r.chunks);
      assert.equal(r.events.at(-1)!.event, 'usage');
      if (f.includes('text')) {
        assert.equal(a.finish, 'stop');
        return;
      }
      assert.equal(a.finish, 'tool_calls');
      // Only the client tool_use block is a tool call (server tools are the provider's own).
      assert.equal(a.args.size, 1);
      assert.equal(typeof JSON.parse(a.args.get(0)!), 'object');
      assert.ok(a.names.get(0));
    });
  }

  it('a mid-stream error event (real payload) ends the stream with an error event', async () => {
    const head = read('anthropic', 'messages-stream-text.claude-sonnet-4-5.sse').split('event: content_block_stop')[0]!;
    reply = {
      status: 200,
      type: 'text/event-stream',
      body: `${head}event: error\ndata: ${read('anthropic', 'stream-error-event-data-overloaded.excerpt.txt').trim()}\n\n`,
    };
    const r = await run(anthropic(), { messages: [{ role: 'user', content: 'x' }], stream: true });
    const last = r.events.at(-1)!;
    assert.equal(last.event, 'error');
    assert.match(last.error!.message, /Overloaded/);
    assert.equal(last.error!.kind, 'ENGINE_OVERLOADED');
  });

  const expected: Record<string, [number, string, string]> = {
    'error-400-invalid-request-error.json': [400, 'client', 'invalid_request_error'],
    'error-429-rate-limit-account.json': [429, 'retryable', 'rate_limit_error'],
    'error-429-rate-limited-short.json': [429, 'retryable', 'rate_limit_error'],
    'error-529-overloaded.with-request-id.json': [529, 'retryable', 'server_error'],
    'error-529-overloaded.with-docs-link.json': [529, 'retryable', 'server_error'],
  };
  for (const f of readdirSync(join(FIX, 'anthropic')).filter((n) => n.startsWith('error-') && n.endsWith('.json'))) {
    it(`maps ${f} to OpenAI's error shape and the right failure class`, async () => {
      const [status, failure, type] = expected[f]!;
      const body = read('anthropic', f);
      assert.equal(anthropicErrorToOpenAI(status, body).type, type);
      reply = { status, type: 'application/json', body, headers: status === 429 ? { 'retry-after': '3' } : {} };
      await assert.rejects(run(anthropic(), { messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.failure, failure);
        if (status === 429) assert.equal(e.retryAfterMs, 3000);
        assert.ok(e.apiError.message.includes((JSON.parse(body) as { error: { message: string } }).error.message));
        return true;
      });
    });
  }
});
