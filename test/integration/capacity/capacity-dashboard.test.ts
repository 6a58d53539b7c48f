// Capacity and dashboard against a live loopback stack: the control plane samples both agents
// (status stream + their /metrics), serves the capacity report, keeps the history across a
// restart, and its dashboard page (headless Chromium) shows the nodes and an injected GPU fault.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { createFakeNvidiaSmi, type FakeNvidiaSmi } from '../../sim/nvidia-smi/control.ts';
import { spawnService, REPO_ROOT } from '../../../cli/spawn-service.ts';
import type { CapacityReport } from '../../../control-plane/capacity/report.ts';
import { freePort } from '../../helpers/ports.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const ADMIN_TOKEN = 'capacity-dashboard-admin-token';
const OPERATOR = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };

describe('capacity history, report and dashboard on a live stack', () => {
  let stack: Stack;
  let smiA: FakeNvidiaSmi;
  let smiB: FakeNvidiaSmi;
  let storeDir: string;
  let cpUrl: string;

  before(async () => {
    storeDir = mkdtempSync(join(tmpdir(), 'icp-capacity-'));
    smiA = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
    smiB = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
    const agent = async (smi: FakeNvidiaSmi) => ({
      gpu: {
        enabled: true,
        nvidiaSmiPath: smi.path,
        queryIntervalMs: 200,
        xmlIntervalMs: 200,
        timeoutMs: 3_000,
        thresholds: { risingHoldMs: 60_000 },
      },
      // A fixed port so the control plane (reading the same config) can scrape the agent's /metrics.
      httpListen: { host: '127.0.0.1', port: await freePort() },
    });
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 'sim-a' }, { id: 'sim-b' }],
      agents: [
        { id: 'gpu-a', sim: 'sim-a', extra: await agent(smiA), env: smiA.env },
        { id: 'gpu-b', sim: 'sim-b', extra: await agent(smiB), env: smiB.env },
      ],
      controlPlane: { capacity: { sampleIntervalMs: 300, store: { path: storeDir } } },
    });
    cpUrl = stack.controlPlane!.url;
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
    smiA?.cleanup();
    smiB?.cleanup();
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  });

  it("samples both nodes and reports demand in requests/s from the agents' counters", async () => {
    const send = () =>
      fetch(`${stack.routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
      }).then((r) => r.text());
    const until = Date.now() + 2_500;
    while (Date.now() < until) await Promise.all(Array.from({ length: 4 }, send));
    const report = await waitFor(
      async () => {
        const r = (await (
          await fetch(`${cpUrl}/v1/capacity?window=5m&slot=1s&growth=2&sloTtftSeconds=1&add=1&remove=1`, OPERATOR)
        ).json()) as CapacityReport;
        const pool = r.pools.find((p) => p.model === DEFAULT_MODEL);
        return pool && pool.demand.peak > 0 && pool.nodes.length === 2 ? r : undefined;
      },
      10_000,
      300,
    );
    const pool = report!.pools.find((p) => p.model === DEFAULT_MODEL)!;
    assert.equal(pool.unit, 'requests/s');
    assert.deepEqual(
      pool.nodes.map((n) => n.node),
      ['gpu-a', 'gpu-b'],
    );
    assert.ok(pool.demand.outputTokensPerSecond!.peak > 0);
    assert.ok(
      pool.nodes.every((n) => n.kind === '1x NVIDIA A10G' && n.state.ready && n.state.gpuVerdict === 'HEALTHY'),
      JSON.stringify(pool.nodes.map((n) => [n.kind, n.state])),
    );
    assert.ok(pool.nodesNeeded && pool.nodesNeeded.growth === 2 && pool.whatIf.length === 2);
    const bad = await fetch(`${cpUrl}/v1/capacity?window=soon`, OPERATOR);
    assert.equal(bad.status, 400);
    const hist = (await (await fetch(`${cpUrl}/v1/capacity/history?window=5m&node=gpu-a`, OPERATOR)).json()) as {
      resolution: string;
      data: { node: string; gpus: { temperatureC?: number }[] }[];
    };
    assert.equal(hist.resolution, 'raw');
    assert.ok(hist.data.length > 3 && hist.data.every((s) => s.node === 'gpu-a'));
    assert.ok(typeof hist.data.at(-1)!.gpus[0]!.temperatureC === 'number');
  });

  it('the dashboard loads with no console errors, shows the nodes and reflects a GPU fault within seconds', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`);
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()}`));
      const res = await page.goto(`${cpUrl}/dashboard`);
      assert.equal(res?.status(), 200);
      // Every API the page reads needs the operator's token (control-plane/api/access.ts).
      await page.locator('[data-testid="admin-token"]').fill(ADMIN_TOKEN);
      await page.locator('[data-testid="admin-token"]').dispatchEvent('change');
      await page.locator('[data-testid="node-gpu-a"]').waitFor({ timeout: 5_000 });
      await page.locator('[data-testid="node-gpu-b"]').waitFor({ timeout: 5_000 });
      assert.match(await page.locator('[data-testid="gpu-gpu-a"]').innerText(), /HEALTHY/);
      // Lanes and refusals: the router reports its lanes to the control plane every few seconds.
      const laneRows = page.locator('[data-testid^="lane-router-"]');
      await laneRows.first().waitFor({ timeout: 8_000 });
      const laneIds: string[] = [];
      for (let i = 0; i < (await laneRows.count()); i++)
        laneIds.push((await laneRows.nth(i).getAttribute('data-testid'))!.split('-').at(-1)!);
      assert.deepEqual(laneIds.sort(), ['critical', 'sheddable', 'standard']);
      await page.locator(`[data-testid="pool-${DEFAULT_MODEL}"] svg polyline`).first().waitFor({ timeout: 10_000 });

      // The bound, summed: the agent's next nvidia-smi poll (200 ms apart; the fake is a spawned node
      // process, ~0.3-1.5 s on a busy 2-core machine), the status pushed at once to the control
      // plane's watch, the page's 1 s cluster refresh, one render: about 3 s at worst in CI's
      // conditions, so 5 s. It was missed once while a chaos run shared the machine with CI, which
      // is outside those conditions; on such a machine the message names the time it took.
      smiA.setFault('ecc_uncorrected');
      const t0 = Date.now();
      // A locator, not waitForFunction: the page's CSP (no unsafe-eval) refuses evaluated strings.
      await page.locator('[data-testid="gpu-gpu-a"]', { hasText: 'UNHEALTHY' }).waitFor({ timeout: 5_000 });
      const reactMs = Date.now() - t0;
      const cell = await page.locator('[data-testid="gpu-gpu-a"]').innerText();
      assert.match(cell, /ecc/i, 'the reason is shown');
      assert.match(await page.locator('[data-testid="node-gpu-a"]').innerText(), /not ready/);
      assert.match(await page.locator('[data-testid="gpu-gpu-b"]').innerText(), /HEALTHY/);
      assert.ok(reactMs < 5_000, `reflected in ${reactMs} ms`);
      await page.waitForTimeout(5_500); // the capacity panel refreshes every 5 s: one refresh has run
      const dir = join(REPO_ROOT, 'test-artifacts');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
      assert.match(await page.locator('[data-testid="capacity"]').innerText(), /GPU unhealthy/);
      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
      smiA.setFault(null);
    }
  });

  it('a restarted control plane keeps the history (file store)', async () => {
    const before = (await (await fetch(`${cpUrl}/v1/capacity/history?window=5m`, OPERATOR)).json()) as { data: { t: number }[] };
    assert.ok(before.data.length > 0);
    await stack.controlPlane!.stop(5_000);
    const cp2 = await spawnService({
      name: 'control-plane-2',
      entry: 'cli/main.ts',
      args: ['control-plane', '--config', stack.configFile],
      env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: stack.credentials.routerToken, ICP_NODE_SECRET: stack.credentials.nodeSecret },
    });
    try {
      const after = (await (await fetch(`${cp2.url}/v1/capacity/history?window=5m`, OPERATOR)).json()) as { data: { t: number }[] };
      const oldest = Math.min(...before.data.map((s) => s.t));
      assert.ok(
        after.data.some((s) => s.t === oldest),
        'the oldest sample survived',
      );
      assert.ok(after.data.length >= before.data.length);
    } finally {
      await cp2.stop(5_000);
    }
  });
});
