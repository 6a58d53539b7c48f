// Drain: SIGTERM to an agent with streams in flight. It reports draining (routers send it nothing
// new), every in-flight stream finishes normally, then the agent exits 0.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';

const ADMIN_TOKEN = 'drain-test-admin-token';

describe('agent drain on SIGTERM', () => {
  let stack: Stack;
  let client: OpenAI;

  before(async () => {
    // A slow-ish engine (25 ms per decode step) so 40 tokens take about a second: long enough to
    // be in flight when the SIGTERM lands.
    const args = ['--decode-step-ms', '25', '--decode-step-ms-per-seq', '0', '--max-num-seqs', '64'];
    stack = await startStack({
      sims: [
        { id: 'sim-a', args },
        { id: 'sim-b', args },
      ],
      agents: [
        { id: 'gpu-a', sim: 'sim-a' },
        { id: 'gpu-b', sim: 'sim-b' },
      ],
      controlPlaneEnv: { ICP_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  it('finishes all 20 in-flight streams, sends nothing new to the draining node, exits 0', async () => {
    const streams = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.chat.completions
          .create({
            model: DEFAULT_MODEL,
            messages: [{ role: 'user', content: `story ${i}` }],
            max_tokens: 40,
            stream: true,
            stream_options: { include_usage: true },
          })
          .withResponse(),
      ),
    );
    const onA = streams.filter((s) => s.response.headers.get('x-backend') === 'node:gpu-a').length;
    assert.ok(onA > 0, 'some streams run on the node we drain');

    const results = streams.map(async ({ data }) => {
      let finish: string | null = null;
      let tokens = 0;
      for await (const chunk of data) {
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
      return { finish, tokens };
    });
    // SIGTERM while every stream is mid-flight.
    const agentA = stack.agents.get('gpu-a')!;
    agentA.child.kill('SIGTERM');

    // While it drains, new requests all go to gpu-b. Wait for the router's own view (the agent
    // pushes `draining` at once on SIGTERM; a fixed 150 ms wait was a guess on a loaded machine),
    // bounded at 5 s: its drain grace is far longer, so the streams above are still running.
    await waitFor(
      async () => /^router_node_routable_state\{node="gpu-a"\} 0$/m.test(await (await fetch(`${stack.routerUrl}/metrics`)).text()),
      5_000,
      20,
    );
    for (let i = 0; i < 5; i++) {
      const { response } = await client.chat.completions
        .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'new' }], max_tokens: 1 })
        .withResponse();
      assert.equal(response.headers.get('x-backend'), 'node:gpu-b');
    }

    const done = await Promise.all(results);
    assert.equal(done.length, 20);
    for (const d of done) {
      // The simulator's natural answers are 16-64 tokens: each ends by stop or by max_tokens,
      // never by an error, and reports its usage.
      assert.ok(d.finish === 'stop' || d.finish === 'length', `stream ended with ${d.finish}`);
      assert.ok(d.tokens > 0 && d.tokens <= 40);
    }
    assert.equal(await agentA.exited, 0, 'the agent exits cleanly after draining');
  });

  it('a drain from the control plane cordons the node and the agent reports draining', async () => {
    const res = await fetch(`${stack.controlPlane!.url}/v1/nodes/gpu-b/drain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ graceMs: 5_000 }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { node: { cordoned: boolean }; agent: { draining: boolean } };
    assert.equal(body.node.cordoned, true);
    assert.equal(body.agent.draining, true);
    // gpu-a is gone (previous test) and gpu-b is draining: nothing can serve, honestly.
    await waitFor(async () => !(await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 3_000, 20);
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 503 && e.headers?.get('retry-after') !== null,
    );
    const unknown = await fetch(`${stack.controlPlane!.url}/v1/nodes/nope/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(unknown.status, 404);
  });
});
