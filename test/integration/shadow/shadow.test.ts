// Shadow traffic end to end: a real control plane, router, agents and simulated engines, the
// official openai SDK as the client. The user's answer always comes from the primary model (the
// shadow model never appears); a hanging shadow never slows the user; sampling follows the hash
// of the request id exactly; the daily token budget and the sheddable lane (a saturated shadow
// pool) refuse shadows while users are served; records reach the control plane with the
// embedding similarity of the two answers, and its summary compares them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { isSampled } from '../../../router/shadow/sampling.ts';
import type { ShadowRecord } from '../../../common/shadow-record.ts';
import type { ShadowSummaryRow } from '../../../control-plane/shadow/summary.ts';

const SHADOW_MODEL = 'sim-shadow';
const SMALL_MODEL = 'sim-small';
const HANG_MODEL = 'sim-hang';
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FAST = ['--max-num-seqs', '64', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'];

describe('shadow traffic (router + control plane + simulated engines)', () => {
  let stack: Stack;
  let client: OpenAI;

  const admin = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const records = async (alias: string) =>
    (await admin<{ data: ShadowRecord[] }>(`/v1/admin/shadow/records?alias=${alias}&limit=1000`)).data;
  /** router_shadow_requests_total by outcome for one alias. */
  const outcomes = async (alias: string): Promise<Record<string, number>> => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^router_shadow_requests_total\{alias="([^"]+)",target="[^"]+",outcome="([^"]+)"\} (\d+)$/gm)) {
      if (m[1] === alias) out[m[2]!] = Number(m[3]);
    }
    return out;
  };
  const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  const chat = (model: string, requestId?: string, maxTokens = 12) =>
    client.chat.completions
      .create(
        { model, messages: [{ role: 'user', content: 'Tell me about the weather in spring.' }], max_tokens: maxTokens },
        requestId ? { headers: { 'x-request-id': requestId } } : undefined,
      )
      .withResponse();

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [
        { id: 'p', args: FAST },
        { id: 's', model: SHADOW_MODEL, args: FAST },
        // One batch slot and slow decoding: easy to saturate.
        { id: 'small', model: SMALL_MODEL, args: ['--max-num-seqs', '1', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'] },
        { id: 'h', model: HANG_MODEL, args: FAST },
      ],
      agents: [
        { id: 'gpu-p', sim: 'p' },
        { id: 'gpu-s', sim: 's' },
        { id: 'gpu-small', sim: 'small', engine: { maxNumSeqs: 1 } },
        { id: 'gpu-h', sim: 'h' },
      ],
      router: {
        // ignore_eos is opt-in (docs/request-fields.md).
        requestFields: { extras: { vllm: ['ignore_eos'] } },
        aliases: {
          chat: DEFAULT_MODEL,
          'chat-half': DEFAULT_MODEL,
          'chat-hang': DEFAULT_MODEL,
          'chat-budget': DEFAULT_MODEL,
          'chat-sat': DEFAULT_MODEL,
        },
        embeddings: {
          models: [
            {
              id: 'glove-100d-embed',
              kind: 'embedding',
              path: 'models/glove-100d-embed/model.onnx',
              tokenizer: 'models/glove-100d-embed/tokenizer.json',
              output: 'sentence_embedding',
              maxLength: 256,
              workers: 1,
            },
          ],
        },
        shadow: {
          rules: [
            { alias: 'chat', target: `local:${SHADOW_MODEL}`, percent: 100 },
            { alias: 'chat-half', target: `local:${SHADOW_MODEL}`, percent: 50, maxConcurrent: 64 },
            { alias: 'chat-hang', target: `local:${HANG_MODEL}`, percent: 100, timeoutMs: 12_000 },
            // Reservation = estimated prompt + max_tokens (>= 12): one fits in 30 tokens, two do not.
            { alias: 'chat-budget', target: `local:${SHADOW_MODEL}`, percent: 100, dailyTokenBudget: 30 },
            { alias: 'chat-sat', target: `local:${SMALL_MODEL}`, percent: 100 },
          ],
        },
      },
    });
    client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    await waitFor(
      async () => {
        const models = ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
        return [DEFAULT_MODEL, SHADOW_MODEL, SMALL_MODEL, HANG_MODEL].every((m) => models.includes(m));
      },
      30_000,
      100,
    );
  });

  after(async () => {
    await stack?.stop();
    delete process.env.ICP_ADMIN_TOKEN;
  });

  it('answers from the primary only; records arrive with the similarity of the two answers', async () => {
    const { data, response } = await chat('chat');
    assert.equal(data.model, DEFAULT_MODEL);
    assert.match(response.headers.get('x-backend') ?? '', /gpu-p/);
    assert.ok(!JSON.stringify(data).includes(SHADOW_MODEL));
    for (const [, v] of response.headers) assert.ok(!v.includes(SHADOW_MODEL));

    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'And in autumn?' }],
      max_tokens: 12,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) {
      assert.equal(chunk.model, DEFAULT_MODEL);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    assert.ok(text.length > 0);

    const got = (await waitFor(async () => ((await records('chat')).length >= 2 ? records('chat') : undefined), 20_000, 100))!;
    assert.equal(got.length, 2);
    for (const r of got) {
      assert.equal(r.outcome, 'ok', JSON.stringify(r));
      assert.equal(r.target, `local:${SHADOW_MODEL}`);
      assert.equal(r.primary.model, DEFAULT_MODEL);
      assert.match(r.primary.backend ?? '', /gpu-p/);
      assert.equal(r.shadow.model, SHADOW_MODEL);
      assert.match(r.shadow.backend ?? '', /gpu-s/);
      assert.ok((r.shadow.completionTokens ?? 0) > 0 && (r.primary.completionTokens ?? 0) > 0);
      assert.ok(r.shadow.ttftMs !== null && r.shadow.ttftMs <= r.shadow.latencyMs);
      assert.equal(typeof r.similarity, 'number');
      assert.ok(r.similarity! > -1.0001 && r.similarity! < 1.0001);
    }
    // The streamed primary has a TTFT; the non-streamed one has none.
    assert.equal(got.filter((r) => r.primary.ttftMs !== null).length, 1);

    const summary = await admin<{ data: ShadowSummaryRow[] }>('/v1/admin/shadow/summary?alias=chat');
    assert.equal(summary.data.length, 1);
    const row = summary.data[0]!;
    assert.equal(row.count, 2);
    assert.equal(row.errorRate, 0);
    assert.ok(row.meanSimilarity !== null);
    assert.ok(row.tokenRatio !== null && row.tokenRatio > 0);
    assert.ok(row.shadow.latencyMs.p95 !== null && row.primary.latencyMs.p50 !== null);
  });

  it('the operator dashboard shows the comparison once given the admin token', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`);
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
      });
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${stack.controlPlane!.url}/dashboard`);
      await page.fill('[data-testid="admin-token"]', ADMIN_TOKEN);
      await page.dispatchEvent('[data-testid="admin-token"]', 'change');
      const row = page.locator(`[data-testid="shadow-chat-local:${SHADOW_MODEL}"]`);
      await row.waitFor({ timeout: 10_000 });
      const text = await row.innerText();
      assert.match(text, /chat/);
      assert.match(text, new RegExp(SHADOW_MODEL));
      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
    }
  });

  it('a hanging shadow never delays the user', async () => {
    const res = await fetch(`${stack.sims.get('h')!.url}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hang: true }),
    });
    assert.equal(res.status, 200);
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const { data, response } = await chat('chat-hang');
      const ms = performance.now() - t0;
      assert.equal(response.status, 200);
      assert.equal(data.model, DEFAULT_MODEL);
      // The shadow hangs for its whole 12 s timeout; the user never waits for it.
      assert.ok(ms < 7_000, `user waited ${ms} ms`);
    }
    // Every user was answered while all three shadows still hung.
    assert.equal(total(await outcomes('chat-hang')), 0, 'no shadow has finished yet: they hang');
    const got = (await waitFor(async () => ((await records('chat-hang')).length >= 3 ? records('chat-hang') : undefined), 30_000, 200))!;
    for (const r of got) {
      assert.equal(r.outcome, 'error');
      assert.equal(r.error, 'timeout');
      assert.equal(r.similarity, null);
    }
    const summary = await admin<{ data: ShadowSummaryRow[] }>('/v1/admin/shadow/summary?alias=chat-hang');
    assert.equal(summary.data[0]!.errorRate, 1);
  });

  it('mirrors exactly the requests whose id hashes under the percentage', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `req-shadow-half-${i}`);
    const expected = ids.filter((id) => isSampled(`chat-half->local:${SHADOW_MODEL}`, id, 50)).length;
    assert.ok(expected > 0 && expected < ids.length);
    for (const id of ids) {
      const { data } = await chat('chat-half', id, 4);
      assert.equal(data.model, DEFAULT_MODEL);
    }
    const o = (await waitFor(
      async () => {
        const v = await outcomes('chat-half');
        return total(v) >= expected ? v : undefined;
      },
      20_000,
      100,
    ))!;
    // An absence check: no extra shadow shows up in the next 500 ms (shadows start on the next turn
    // of the event loop after their request, so any extra would already be counted).
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(total(await outcomes('chat-half')), expected, JSON.stringify(o));
    const sampledIds = new Set(ids.filter((id) => isSampled(`chat-half->local:${SHADOW_MODEL}`, id, 50)));
    const got = (await waitFor(
      async () => {
        const r = await records('chat-half');
        return r.length >= (o.ok ?? 0) + (o.error ?? 0) ? r : undefined;
      },
      10_000,
      100,
    ))!;
    for (const r of got) assert.ok(sampledIds.has(r.id.slice(0, r.id.indexOf(':'))), `${r.id} was not sampled`);
  });

  it("stops at the rule's daily token budget", async () => {
    for (let i = 0; i < 3; i++) await chat('chat-budget');
    const o = (await waitFor(
      async () => {
        const v = await outcomes('chat-budget');
        return total(v) >= 3 ? v : undefined;
      },
      20_000,
      100,
    ))!;
    assert.equal(o.ok, 1, JSON.stringify(o));
    assert.equal(o.budget_exhausted, 2, JSON.stringify(o));
  });

  it('a saturated shadow pool refuses shadows (sheddable lane) and users are unaffected', async () => {
    // Fill sim-small's one batch slot (and queue two more behind it) with work sent to the engine
    // directly (as another router would), so no queue of this router is involved.
    // ignore_eos: each runs its full 160 tokens (4 s), no natural stop frees the slot early.
    const busy = [0, 1, 2].map(async () => {
      const res = await fetch(`${stack.sims.get('small')!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: SMALL_MODEL, messages: [{ role: 'user', content: 'long' }], max_tokens: 160, ignore_eos: true }),
      });
      return (await res.json()) as { model: string };
    });
    await waitFor(
      async () => {
        const m = await (await fetch(`${stack.sims.get('small')!.url}/metrics`)).text();
        // One running, the rest queued in the engine: the router's saturation signal for that node.
        return /^vllm:num_requests_running\{[^}]*\} 1/m.test(m) && /^vllm:num_requests_waiting\{[^}]*\} [1-9]/m.test(m);
      },
      10_000,
      50,
    );
    // The router sees it (its status can lag on a loaded machine) when a sheddable request of its
    // own to that model is refused (429); a probe that was admitted instead is cut after 1 s.
    await waitFor(
      async () => {
        const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-priority-lane': 'sheddable' },
          body: JSON.stringify({ model: SMALL_MODEL, messages: [{ role: 'user', content: 'probe' }], max_tokens: 1 }),
          signal: AbortSignal.timeout(1_000),
        }).catch(() => undefined);
        await res?.text().catch(() => undefined);
        return res?.status === 429;
      },
      15_000,
      100,
    );
    for (let i = 0; i < 3; i++) {
      const { data, response } = await chat('chat-sat');
      assert.equal(response.status, 200);
      assert.equal(data.model, DEFAULT_MODEL);
    }
    const o = (await waitFor(
      async () => {
        const v = await outcomes('chat-sat');
        return total(v) >= 3 ? v : undefined;
      },
      10_000,
      50,
    ))!;
    assert.equal(o.shed, 3, JSON.stringify(o));
    const done = await Promise.all(busy);
    for (const d of done) assert.equal(d.model, SMALL_MODEL);
  });
});
