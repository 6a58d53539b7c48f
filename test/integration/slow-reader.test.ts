// A client that stops reading a stream (raw socket, paused after the response headers): the
// router's memory does not follow the engine's output, and at the request's deadline the request
// settles (counted, nothing left in flight, the engine's sequence aborted) although the client
// still reads nothing. (The router also destroys such a socket at deadline + 1 s when its data
// is still unsent; the simulator cannot out-produce loopback's socket buffers within a deadline,
// so that path is not exercised here.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startStack, waitFor, listModels, simState, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { rssBytes, scrape, sumOf } from '../chaos/probes.ts';

const DEADLINE_MS = 5_000;

describe('a stream reader that stops reading', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      sims: [
        {
          id: 'sim',
          args: ['--decode-step-ms', '1', '--decode-step-ms-per-seq', '0', '--max-model-len', '262144', '--kv-cache-tokens', '1000000'],
        },
      ],
      agents: [{ id: 'gpu', sim: 'sim' }],
      withControlPlane: false,
      // ignore_eos is opt-in (docs/request-fields.md).
      router: { requestTimeoutMs: DEADLINE_MS, requestFields: { extras: { vllm: ['ignore_eos'] } } },
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });
  after(async () => {
    await stack?.stop();
  });

  it('is cut off at the deadline: the request settles, nothing stays in flight, memory stays flat', async () => {
    const settled = async () => sumOf(await scrape(stack.routerUrl), 'router_requests_total');
    const before = await settled();
    const rss0 = rssBytes(stack.router.child.pid!)!;
    const { port, hostname } = new URL(stack.routerUrl);
    const body = JSON.stringify({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'go on' }],
      max_tokens: 100_000,
      ignore_eos: true,
      stream: true,
    });
    const sockets: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(Number(port), hostname);
      s.once('data', () => s.pause()); // headers (and maybe a chunk) arrived; never read again
      s.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      sockets.push(s);
    }
    try {
      await waitFor(async () => (await simState(stack.sims.get('sim')!.url)).running === 3, 10_000);
      // Past the deadline all three have settled, although none of them read on.
      await waitFor(async () => (await settled()) - before >= 3, DEADLINE_MS + 10_000, 200);
      const after = await scrape(stack.routerUrl);
      assert.equal(sumOf(after, 'router_node_in_flight_depth'), 0);
      // The cancel travels router -> agent -> engine after the router settled: give it a moment.
      await waitFor(async () => (await simState(stack.sims.get('sim')!.url)).running === 0, 5_000, 100);
      // The router read from upstream no faster than its clients read from it.
      assert.ok(rssBytes(stack.router.child.pid!)! - rss0 < 64 * 1024 * 1024, 'router RSS grew by more than 64 MB');
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
