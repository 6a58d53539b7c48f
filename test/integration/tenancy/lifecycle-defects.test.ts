// Issue 18's two request-lifecycle defects, end to end (real control plane, router, agent, engine, Redis):
// 1. with idempotency off, a stream its client abandons still writes exactly one usage record
//    (outcome cancelled, with its spend), whether the response's 'close' or the handler's end comes first;
// 2. a budget downgrade does not change what idempotency hashes: a retry with the same
//    Idempotency-Key after the budget was raised replays the first answer instead of a 409.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { adminApi, startStack, waitFor, DEFAULT_MODEL } from '../../helpers/stack.ts';
import { startRedis } from '../../helpers/redis.ts';

const CHEAP_MODEL = 'sim-cheap-model';
const PRICE = { inputPerMTok: 1_000, outputPerMTok: 3_000 };
type UsageRec = { keyId: string; outcome: string; costUsd: number; completionTokens: number; status: number };

async function lifecycleStack(idempotency: boolean) {
  const adminToken = `admin-${Math.random().toString(36).slice(2)}-secret`;
  const redis = await startRedis();
  process.env.ICP_ADMIN_TOKEN = adminToken;
  const sim = ['--max-num-seqs', '64', '--decode-step-ms', '20', '--decode-step-ms-per-seq', '0'];
  const stack = await startStack({
    sims: [
      { id: 'a', args: sim },
      { id: 'b', model: CHEAP_MODEL, args: sim },
    ],
    agents: [
      { id: 'gpu-a', sim: 'a' },
      { id: 'gpu-b', sim: 'b' },
    ],
    router: {
      auth: { mode: 'required', redisUrl: redis.url },
      admission: { enabled: false },
      idempotency: { enabled: idempotency },
      aliases: { 'chat-premium': DEFAULT_MODEL, 'chat-cheap': CHEAP_MODEL },
      catalog: { prices: { [DEFAULT_MODEL]: PRICE }, localGpuCostPerToken: 0.000001 },
      budgets: { downgrade: { 'chat-premium': 'chat-cheap' } },
    },
  });
  const admin = adminApi(() => stack.controlPlane!.url, adminToken);
  const newKey = async (policy: object) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name: `t-${Math.random()}`, policy })) as { id: string };
    const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string; keyId: string };
    await waitFor(
      async () => (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= 1,
      5_000,
      20,
    );
    return { tenantId: tenant.id, ...k };
  };
  const chat = (key: string, body: object, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
    });
  const stop = async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack.stop();
    await redis.stop();
  };
  return { stack, admin, newKey, chat, stop };
}

describe('lifecycle: an abandoned stream is settled once with idempotency off', () => {
  let s: Awaited<ReturnType<typeof lifecycleStack>>;
  before(async () => {
    s = await lifecycleStack(false);
  });
  after(async () => s?.stop());

  it('writes exactly one usage record, outcome cancelled, with its spend', async () => {
    const { tenantId, key } = await s.newKey({});
    const abort = new AbortController();
    const res = await s.chat(
      key,
      { model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'tell me a long story' }], max_tokens: 400, stream: true },
      {},
      abort.signal,
    );
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < 4) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before the client left');
      text += Buffer.from(value).toString();
    }
    abort.abort();
    await reader.cancel().catch(() => undefined);

    const records = await waitFor(
      async () => {
        const r = (await s.admin('GET', `/v1/admin/usage?tenant=${tenantId}`)) as { data: UsageRec[] };
        return r.data.length > 0 ? r.data : undefined;
      },
      15_000,
      100,
    );
    const record = records?.[0];
    assert.ok(record);
    assert.equal(record.outcome, 'cancelled');
    assert.ok(record.completionTokens > 0 && record.costUsd > 0, `tokens and spend recorded: ${JSON.stringify(record)}`);
    // No second record from the other of close / the handler's end.
    await new Promise((r) => setTimeout(r, 1_500));
    const again = (await s.admin('GET', `/v1/admin/usage?tenant=${tenantId}`)) as { data: UsageRec[] };
    assert.equal(again.data.length, 1, JSON.stringify(again.data));
  });
});

describe('lifecycle: a budget downgrade does not break an Idempotency-Key retry', () => {
  let s: Awaited<ReturnType<typeof lifecycleStack>>;
  before(async () => {
    s = await lifecycleStack(true);
  });
  after(async () => s?.stop());

  it('replays the downgraded answer after the budget was raised, not a 409', async () => {
    const { tenantId, key } = await s.newKey({ dailyCostBudgetUsd: 0.0001, onBudgetExhausted: 'downgrade' });
    const body = { model: 'chat-premium', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 };
    // Spend past the budget (spend is recorded asynchronously: repeat until the downgrade shows).
    await waitFor(async () => (await s.chat(key, body)).headers.get('x-budget-downgraded') ?? undefined, 20_000, 50);

    const first = await s.chat(key, body, { 'idempotency-key': 'retry-me' });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-budget-downgraded'), 'chat-premium -> chat-cheap');
    const firstAnswer = (await first.json()) as { id: string; model: string };
    assert.equal(firstAnswer.model, CHEAP_MODEL);

    await s.admin('PATCH', `/v1/admin/tenants/${tenantId}`, { policy: { dailyCostBudgetUsd: 1_000, onBudgetExhausted: 'downgrade' } });
    await waitFor(
      async () => {
        const r = await s.chat(key, body);
        await r.arrayBuffer();
        return r.status === 200 && r.headers.get('x-budget-downgraded') === null ? true : undefined;
      },
      10_000,
      100,
    );

    const retry = await s.chat(key, body, { 'idempotency-key': 'retry-me' });
    const retryAnswer = (await retry.json()) as { id: string; model: string; error?: { code: string } };
    assert.equal(retry.status, 200, JSON.stringify(retryAnswer));
    assert.equal(retryAnswer.id, firstAnswer.id, 'the stored answer is replayed');
    assert.equal(retryAnswer.model, CHEAP_MODEL);
  });
});
