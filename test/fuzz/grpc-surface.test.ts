// Fuzz the node agent's gRPC surface (NodeAgent Generate / WatchStatus / Drain) with generated
// bad input: random bytes as the protobuf message, well-formed messages with hostile fields
// (junk, deep, huge body_json; unknown operations; odd model names), messages over the receive
// limit, junk metadata, hand-made HTTP/2 requests with broken gRPC framing, and raw bytes on the
// socket. Every call must end (an error status or a normal end) within its deadline, the agent
// must not crash, keep serving, and its RSS stay bounded. Drain cases run last (they drain it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, constants as h2 } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { startStack, type Stack, DEFAULT_MODEL } from '../helpers/stack.ts';
import { createNodeAgentClient, grpc } from '../../common/grpc.ts';
import { agentCallToken, agentControlToken } from '../../common/credentials.ts';
import { FUZZ_SEED, fuzzCases, makeFuzz, rng, rssBytes } from './generators.ts';
import { sleep } from '../../common/process.ts';

// 1 000 in CI (about 90 s on a loaded 2-core machine); FUZZ_CASES=10000 for the long run.
const CASES = fuzzCases(1000);
const DRAIN_CASES = Math.max(50, Math.floor(CASES / 20));
const MEMORY_BOUND = 256 * 1024 * 1024;
const SVC = '/inference.v1.NodeAgent/';
const identity = (b: Buffer) => b;

function randomBytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** Ends when the call ends, whatever way; resolves with the status code (0 = OK). */
function streamCall(stream: grpc.ClientReadableStream<unknown>, cancelAfterData = false): Promise<number> {
  return new Promise((resolve) => {
    stream.on('data', () => {
      if (cancelAfterData) stream.cancel();
    });
    stream.on('error', (e: grpc.ServiceError) => resolve(e.code));
    stream.on('end', () => resolve(0));
  });
}

function rawHttp2(address: string, path: string, headers: Record<string, string>, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const session = h2connect(`http://${address}`);
    session.on('error', () => resolve('session-error'));
    const req = session.request({ [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: path, ...headers });
    let status = '';
    req.on('response', (h) => (status = String(h['grpc-status'] ?? h[':status'])));
    req.on('trailers', (t) => (status = String(t['grpc-status'] ?? status)));
    req.on('error', () => undefined);
    // An absolute bound, not an idle timeout: a frame that happens to be a valid WatchStatus
    // request is answered with a status stream that never idles (the agent is right to).
    const timer = setTimeout(() => {
      req.close(h2.NGHTTP2_CANCEL);
      session.destroy();
    }, 5_000);
    req.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve(status || 'closed');
    });
    req.end(body);
  });
}

function rawTcp(address: string, bytes: Buffer): Promise<void> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const s = tcpConnect(port, host, () => s.end(bytes));
    s.on('data', () => undefined);
    s.on('error', () => resolve());
    const timer = setTimeout(() => s.destroy(), 5_000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('gRPC surface fuzz (node agent)', () => {
  let stack: Stack;
  let address: string;

  before(async () => {
    stack = await startStack({
      sims: [{ id: 'sim-a' }],
      agents: [{ id: 'gpu-a', sim: 'sim-a' }],
      withControlPlane: false,
      agentTokens: true,
    });
    address = stack.agents.get('gpu-a')!.url;
  });

  after(async () => {
    await stack?.stop();
  });

  // Calls carry this node's call token (as a router's do), Drain its control token, so the cases
  // reach the handlers behind the caller check; junk metadata cases sometimes go without.
  const callToken = () => agentCallToken(stack.credentials.nodeToken('gpu-a'));
  const withToken = (token: string, md = new grpc.Metadata()) => {
    md.set('authorization', `Bearer ${token}`);
    return md;
  };

  async function agentServes(): Promise<boolean> {
    const client = createNodeAgentClient(address, undefined, callToken());
    try {
      const code = await streamCall(client.WatchStatus({ routerId: 'fuzz-check' }, { deadline: Date.now() + 10_000 }), true);
      return code === grpc.status.CANCELLED;
    } finally {
      client.close();
    }
  }

  it(`${CASES} hostile calls and frames, then ${DRAIN_CASES} Drain calls: every call ends, no crash, bounded RSS (seed ${FUZZ_SEED})`, async () => {
    const r = rng(FUZZ_SEED + 29);
    const f = makeFuzz(r);
    const raw = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024 });
    const typed = createNodeAgentClient(address, undefined, callToken());
    const controlToken = agentControlToken(stack.credentials.nodeToken('gpu-a'));
    const pid = stack.agents.get('gpu-a')!.child.pid!;
    const rss0 = await rssBytes(pid);
    let rssMax = rss0;
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const deadline = () => ({ deadline: Date.now() + 8_000 });
    const junkBody = () =>
      f.pick([
        'not json',
        '',
        '{',
        JSON.stringify(f.value(0)),
        '['.repeat(100_000),
        JSON.stringify({ model: DEFAULT_MODEL, messages: f.value(1), max_tokens: f.pick([1, -1, 1e12, 'x']) }),
        JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x'.repeat(3 * 1024 * 1024) }], max_tokens: 1 }),
        JSON.stringify({
          model: DEFAULT_MODEL,
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: 2,
          stream: f.pick([true, false, 'yes']),
        }),
      ]);
    try {
      for (let i = 0; i < CASES; i++) {
        // A case that never ends is a finding, not a stuck test run: name it and fail.
        await Promise.race([
          runCase(i),
          sleep(30_000).then(() => {
            throw new Error(`case ${i} did not end within 30 s; outcomes so far ${JSON.stringify(Object.fromEntries(outcomes))}`);
          }),
        ]);
        if (i % 100 === 0) rssMax = Math.max(rssMax, await rssBytes(pid));
      }
      async function runCase(i: number): Promise<void> {
        const k = r();
        if (k < 0.35) {
          const size = f.pick([0, 1, 5, 64, 1_000, 20_000, 5 * 1024 * 1024]);
          count(
            `generate-bytes:${await streamCall(raw.makeServerStreamRequest(SVC + 'Generate', identity, identity, randomBytes(r, size), withToken(callToken()), deadline()))}`,
          );
        } else if (k < 0.6) {
          const req = {
            requestId: f.pick(['', 'r1', 'x'.repeat(10_000), '\u0000']),
            operation: f.pick([0, 1, 2, 3, 99, -1]) as unknown as 'CHAT_COMPLETIONS',
            model: f.pick([DEFAULT_MODEL, '', 'no-such', 'x'.repeat(5_000)]),
            bodyJson: junkBody(),
          };
          count(`generate-fields:${await streamCall(typed.Generate(req, deadline()))}`);
        } else if (k < 0.7) {
          count(
            `watch-bytes:${await streamCall(raw.makeServerStreamRequest(SVC + 'WatchStatus', identity, identity, randomBytes(r, f.pick([0, 3, 100, 10_000])), withToken(callToken()), deadline()), true)}`,
          );
        } else if (k < 0.8) {
          const md = new grpc.Metadata();
          for (let j = 0; j < 1 + Math.floor(r() * 5); j++)
            md.add(
              f.pick(['x-request-id', 'x-lane', 'traceparent', 'x-deadline-ms', 'grpc-timeout-x', 'x-b']),
              f.pick(['', 'critical', 'zzz', '-1', '00-xyz-01', 'a'.repeat(8_000)]),
            );
          count(
            `generate-metadata:${await streamCall(raw.makeServerStreamRequest(SVC + 'Generate', identity, identity, randomBytes(r, 50), r() < 0.5 ? withToken(callToken(), md) : md, deadline()))}`,
          );
        } else if (k < 0.93) {
          const payload = randomBytes(r, f.pick([0, 10, 1_000]));
          const prefix = Buffer.alloc(5);
          prefix[0] = f.pick([0, 1, 2, 255]);
          prefix.writeUInt32BE(f.pick([payload.length, 0, 0xffffffff, payload.length + 100, 64 * 1024 * 1024]), 1);
          const body = r() < 0.2 ? payload : Buffer.concat([prefix, payload]);
          const path = f.pick([SVC + 'Generate', SVC + 'WatchStatus', SVC + 'Nope', '/x', '/grpc.health.v1.Health/Check']);
          const ct = f.pick(['application/grpc', 'application/grpc+proto', 'text/plain', 'application/json']);
          count(
            `h2:${await rawHttp2(address, path, { 'content-type': ct, te: 'trailers', ...(r() < 0.3 ? { 'grpc-encoding': f.pick(['gzip', 'bogus', 'identity']) } : {}), ...(r() < 0.2 ? { 'grpc-timeout': f.pick(['1S', 'xx', '99999999999H', '-1m']) } : {}) }, body)}`,
          );
        } else {
          const preface = r() < 0.5 ? Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') : Buffer.alloc(0);
          await rawTcp(address, Buffer.concat([preface, randomBytes(r, f.pick([1, 9, 100, 10_000]))]));
          count('tcp');
        }
        void i;
      }
      assert.equal(stack.agents.get('gpu-a')!.child.exitCode, null, 'agent alive');
      assert.ok(await agentServes(), 'the agent still streams its status');
      // A well-formed generation still works after all that.
      const ok = await streamCall(
        typed.Generate(
          {
            requestId: 'after-fuzz',
            operation: 'CHAT_COMPLETIONS',
            model: DEFAULT_MODEL,
            bodyJson: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
          },
          deadline(),
        ),
      );
      assert.equal(ok, 0, 'a valid Generate succeeds after the fuzz');

      for (let i = 0; i < DRAIN_CASES; i++) {
        const code = await new Promise<number>((resolve) =>
          raw.makeUnaryRequest(
            SVC + 'Drain',
            identity,
            identity,
            randomBytes(r, f.pick([0, 2, 7, 100, 5 * 1024 * 1024])),
            withToken(controlToken),
            deadline(),
            (err) => resolve(err?.code ?? 0),
          ),
        );
        count(`drain:${code}`);
      }
      rssMax = Math.max(rssMax, await rssBytes(pid));
    } finally {
      raw.close();
      typed.close();
    }
    assert.equal(stack.agents.get('gpu-a')!.child.exitCode, null, 'agent alive after Drain fuzz');
    assert.ok(await agentServes(), 'the agent still streams its status after Drain fuzz');
    assert.ok(rssMax - rss0 < MEMORY_BOUND, `RSS grew from ${(rss0 / 2 ** 20).toFixed(0)} to ${(rssMax / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(
      [...outcomes.keys()].some((o) => o.startsWith('generate-bytes:') && o !== 'generate-bytes:0'),
      'random bytes are refused with a status',
    );
    console.log(
      `# gRPC fuzz: ${CASES + DRAIN_CASES} cases, outcomes ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}, RSS ${(rss0 / 2 ** 20).toFixed(0)} -> max ${(rssMax / 2 ** 20).toFixed(0)} MiB`,
    );
  });
});
