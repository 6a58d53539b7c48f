// Issue 19: vLLM before 0.10.1 reports a mid-stream failure as a top-level
// `{"object":"error","message":...,"code":...}` event (its ErrorResponse model), not `{"error":{...}}`.
// The adapter must turn it into ENGINE_ERROR instead of forwarding it as a chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VllmAdapter } from '../../node-agent/engines/vllm.ts';
import { EngineError } from '../../node-agent/engines/engine.ts';

const OLD_ERROR = '{"object":"error","message":"The model ran out of KV cache.","type":"BadRequestError","param":null,"code":400}';
const CHUNK =
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}]}';

test('old vLLM mid-stream {"object":"error"} event is ENGINE_ERROR, not a chunk', async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`data: ${CHUNK}\n\ndata: ${OLD_ERROR}\n\ndata: [DONE]\n\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const adapter = new VllmAdapter({ url: `http://127.0.0.1:${port}`, requestTimeoutMs: 5000 });
  const chunks: string[] = [];
  try {
    await assert.rejects(
      (async () => {
        for await (const ev of adapter.generate(
          'CHAT_COMPLETIONS',
          { model: 'm', stream: true, messages: [] },
          new AbortController().signal,
        )) {
          if (ev.type === 'chunk') chunks.push(ev.json);
        }
      })(),
      (err: unknown) => err instanceof EngineError && err.kind === 'ENGINE_ERROR' && err.message === 'The model ran out of KV cache.',
    );
    assert.deepEqual(chunks, [CHUNK]);
  } finally {
    await adapter.close();
    await new Promise((r) => server.close(r));
  }
});
