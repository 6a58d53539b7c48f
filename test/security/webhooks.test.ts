// Issue 17: webhook fetches followed redirects, went to any address (cloud metadata included) and
// budget webhooks were not signed; the budgets' downgrade map was a plain-object lookup with client
// input (`"model":"constructor"` -> 500). Loopback receivers on random ports; the allow option is
// set explicitly wherever a delivery is meant to reach them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { classifyAddress, outboundPolicySchema, postWebhook } from '../../router/webhooks/delivery.ts';
import { deliver, eventFor } from '../../router/batch/webhook.ts';
import { Budgets, budgetsConfigSchema } from '../../router/accounting/budgets.ts';
import { MemoryBudgetStore } from '../../common/store/memory-budgets.ts';
import { silentLogger } from '../../common/logger.ts';

const OFF = { allowPrivateTargets: false, allowTargets: [] };
const ON = { allowPrivateTargets: true, allowTargets: [] };

type Hit = { path: string; headers: IncomingHttpHeaders; body: string };

async function receiver(answer: (path: string) => { status: number; headers?: Record<string, string> }) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ path: req.url ?? '', headers: req.headers, body });
      const a = answer(req.url ?? '');
      res.writeHead(a.status, a.headers).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { hits, port, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

describe('webhook targets', () => {
  it('classifies internal addresses (no network)', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['169.254.169.254', 'link_local'],
      ['100.64.0.1', 'cgnat'],
      ['100.127.255.254', 'cgnat'],
      ['0.0.0.0', 'unspecified'],
      ['224.0.0.1', 'multicast'],
      ['255.255.255.255', 'reserved'],
      ['::', 'unspecified'],
      ['::1', 'loopback'],
      ['fe80::1', 'link_local'],
      ['fd00:ec2::254', 'unique_local'],
      ['fc00::1', 'unique_local'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:a9fe:a9fe', 'link_local'],
      ['64:ff9b::10.0.0.1', 'private'],
      ['[::1]', 'loopback'],
      ['8.8.8.8', 'public'],
      ['172.32.0.1', 'public'],
      ['100.128.0.1', 'public'],
      ['2606:4700:4700::1111', 'public'],
      ['not-an-ip', 'invalid'],
    ];
    for (const [ip, cls] of cases) assert.equal(classifyAddress(ip), cls, ip);
  });

  it('the allow-list takes CIDRs, addresses and host names, nothing else', () => {
    assert.ok(outboundPolicySchema.safeParse({ allowTargets: ['10.0.0.0/8', 'fd00::/8', '127.0.0.1', 'hooks.internal'] }).success);
    for (const bad of ['10.0.0.0/33', 'http://x', 'a b', '1.2.3.4/8/1'])
      assert.ok(!outboundPolicySchema.safeParse({ allowTargets: [bad] }).success, bad);
    assert.deepEqual(outboundPolicySchema.parse({}), OFF, 'secure by default');
  });

  describe('deliveries', () => {
    let target: Awaited<ReturnType<typeof receiver>>;
    let bouncer: Awaited<ReturnType<typeof receiver>>;
    before(async () => {
      target = await receiver(() => ({ status: 204 }));
      bouncer = await receiver(() => ({ status: 302, headers: { location: `${target.url}/stolen` } }));
    });
    after(async () => {
      await target.close();
      await bouncer.close();
    });

    it('refuses loopback, localhost and metadata targets without the allow option, before connecting', async () => {
      target.hits.length = 0;
      const event = eventFor('evt_1', 'batch_1', 'completed', 1);
      assert.equal(await deliver(`${target.url}/hook`, 's', event, 2_000), false, 'default policy: refused');
      assert.equal(await deliver(`${target.url}/hook`, 's', event, 2_000, OFF), false);
      const byName = await postWebhook(`http://localhost:${target.port}/hook`, '{}', { timeoutMs: 2_000, policy: OFF });
      assert.equal(byName.ok, false);
      assert.equal(!byName.ok && byName.reason, 'refused_target');
      const metadata = await postWebhook('http://169.254.169.254/latest/meta-data/', '{}', { timeoutMs: 2_000, policy: OFF });
      assert.deepEqual([metadata.ok, !metadata.ok && metadata.reason], [false, 'refused_target']);
      // A public name that resolves inward is refused too (checked on the resolved address).
      const rebound = await postWebhook(`http://hooks.example.com:${target.port}/`, '{}', {
        timeoutMs: 2_000,
        policy: OFF,
        resolve: async () => [
          { address: '93.184.215.14', family: 4 },
          { address: '127.0.0.1', family: 4 },
        ],
      });
      assert.equal(!rebound.ok && rebound.reason, 'refused_target');
      assert.equal(target.hits.length, 0, 'nothing reached the receiver');
    });

    it('delivers when allowed (option, CIDR, host name), to the checked address only', async () => {
      target.hits.length = 0;
      const event = eventFor('evt_2', 'batch_2', 'completed', 1);
      assert.equal(await deliver(`${target.url}/a`, 's', event, 2_000, ON), true);
      assert.equal(await deliver(`${target.url}/b`, 's', event, 2_000, { allowTargets: ['127.0.0.0/8'] }), true);
      assert.equal(await deliver(`${target.url}/c`, 's', event, 2_000, { allowTargets: ['10.0.0.0/8'] }), false, 'another CIDR');
      const named = await postWebhook(`http://localhost:${target.port}/d`, '{}', {
        timeoutMs: 2_000,
        policy: { allowPrivateTargets: false, allowTargets: ['localhost'] },
        resolve: async () => [{ address: '127.0.0.1', family: 4 }],
      });
      assert.ok(named.ok);
      // The connection goes to the address that was checked: a name no DNS knows reaches the receiver.
      const pinned = await postWebhook(`http://hooks.example.invalid:${target.port}/e`, '{}', {
        timeoutMs: 2_000,
        policy: ON,
        resolve: async () => [{ address: '127.0.0.1', family: 4 }],
      });
      assert.ok(pinned.ok, JSON.stringify(pinned));
      assert.deepEqual(
        target.hits.map((h) => h.path),
        ['/a', '/b', '/d', '/e'],
      );
      assert.equal(target.hits[3]!.headers.host, `hooks.example.invalid:${target.port}`);
    });

    it('does not follow a redirect: a 3xx is a failed delivery', async () => {
      target.hits.length = 0;
      const res = await postWebhook(`${bouncer.url}/hook`, '{}', { timeoutMs: 2_000, policy: ON });
      assert.deepEqual([res.ok, res.status, !res.ok && res.reason], [false, 302, 'redirect']);
      assert.equal(await deliver(`${bouncer.url}/hook`, 's', eventFor('evt_3', 'b', 'completed', 1), 2_000, ON), false);
      assert.equal(bouncer.hits.length, 2);
      assert.equal(target.hits.length, 0, 'the redirect target was never called');
    });

    it('budget webhooks are signed (Standard Webhooks, verified by the openai SDK), refused targets not retried', async () => {
      target.hits.length = 0;
      const secret = `whsec_${Buffer.from('budget-webhook-secret-0123456789').toString('base64')}`;
      const budgets = new Budgets(
        new MemoryBudgetStore(),
        budgetsConfigSchema.parse({ webhook: { url: `${target.url}/budget`, secret, retries: 0, allowPrivateTargets: true } }),
        silentLogger,
      );
      assert.equal(await budgets.notify({ type: 'budget.warning', scope: 't:a', percent: 80 }), true);
      const hit = target.hits[0]!;
      assert.ok(hit.headers['webhook-id'] && hit.headers['webhook-timestamp'] && hit.headers['webhook-signature']);
      const sdk = new OpenAI({ apiKey: 'unused' });
      await sdk.webhooks.verifySignature(hit.body, hit.headers as Record<string, string>, secret);
      await assert.rejects(
        sdk.webhooks.verifySignature(hit.body, hit.headers as Record<string, string>, `whsec_${Buffer.from('wrong').toString('base64')}`),
      );

      // The same webhook without the allow option: refused at once, no retries, nothing sent.
      const closed = new Budgets(
        new MemoryBudgetStore(),
        budgetsConfigSchema.parse({ webhook: { url: `${target.url}/budget`, secret, retries: 5 } }),
        silentLogger,
      );
      const t0 = performance.now();
      assert.equal(await closed.notify({ type: 'budget.warning' }), false);
      assert.ok(performance.now() - t0 < 2_000, 'no backoff on a refused target');
      assert.equal(target.hits.length, 1);
    });
  });
});

describe('budgets downgrade map', () => {
  it('client model names never index a plain object ("constructor", "__proto__", "toString")', () => {
    const budgets = new Budgets(new MemoryBudgetStore(), budgetsConfigSchema.parse({ downgrade: { premium: 'cheap' } }), silentLogger);
    assert.equal(budgets.downgradeOf('premium'), 'cheap');
    for (const m of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'])
      assert.equal(budgets.downgradeOf(m), undefined, m);
  });
});
