// A client that leaves before its answer is complete is counted as cancelled: the router's
// router_requests_total says outcome="cancelled" (HTTP 499 when no answer had started), never a 4xx
// of the client's making, and the engine's sequence is aborted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, listModels, simState, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { scrape, sumOf } from '../chaos/probes.ts';

describe('a client that leaves mid-request', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      // 20 ms a decode step: a 4000-token answer (80 s) runs far longer than the test.
      sims: [{ id: 'sim', args: ['--decode-step-ms', '20', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu', sim: 'sim' }],
      withControlPlane: false,
      // ignore_eos is opt-in (docs/request-fields.md).
      router: { requestFields: { extras: { vllm: ['ignore_eos'] } } },
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });
  after(async () => {
    await stack?.stop();
  });

  const counted = async (labels: Record<string, string>) => sumOf(await scrape(stack.routerUrl), 'router_requests_total', labels);

  for (const stream of [false, true]) {
    it(`${stream ? 'streaming' : 'non-streaming'}: counted as cancelled, not as a client error`, async () => {
      const cancelled0 = await counted({ outcome: 'cancelled' });
      const fourxx0 = await counted({ status: '400' });
      const abort = new AbortController();
      const res = fetch(`${stack.routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: DEFAULT_MODEL,
          messages: [{ role: 'user', content: 'go on' }],
          max_tokens: 4_000,
          ignore_eos: true,
          stream,
        }),
        signal: abort.signal,
      });
      // Leave once the engine runs the sequence (the sim's own count; polled, 10 s on a busy machine).
      await waitFor(async () => (await simState(stack.sims.get('sim')!.url)).running === 1, 10_000);
      if (stream) {
        const r = await res;
        assert.equal(r.status, 200);
        await r.body!.getReader().read(); // the first bytes of the stream arrived
      }
      abort.abort();
      await res.then(
        () => undefined,
        () => undefined,
      );
      // The router settles on the socket's close; 10 s of polling bounds it on a loaded machine.
      await waitFor(async () => (await counted({ outcome: 'cancelled' })) === cancelled0 + 1, 10_000, 50);
      assert.equal(await counted({ status: '400' }), fourxx0, 'a cancellation is not a 400');
      if (!stream) assert.equal((await counted({ outcome: 'cancelled', status: '499' })) >= 1, true, 'no answer had started: 499');
      await waitFor(async () => (await simState(stack.sims.get('sim')!.url)).running === 0, 10_000, 100);
    });
  }
});
