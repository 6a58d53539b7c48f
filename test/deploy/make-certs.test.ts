// scripts/make-certs.sh and deploy/compose/make-secrets.sh: the files compose mounts exist, each
// service directory holds only its own credentials, and the certificates do mutual TLS (a real
// handshake with node:tls: the agent's server certificate, the router's client certificate, and a
// certificate from another CA refused).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { rootPath } from './lib.ts';

const openssl = spawnSync('openssl', ['version']).status === 0;
const skip = openssl ? false : process.env.CI ? false : 'openssl not installed';

function makeCerts(out: string, ...args: string[]) {
  return execFileSync('sh', [rootPath('scripts/make-certs.sh'), out, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
}

const read = (p: string) => readFileSync(p, 'utf8');
const mode = (p: string) => statSync(p).mode & 0o777;

test('make-certs.sh: a CA and one certificate per compose service, each directory its own key only', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'icp-certs-'));
  try {
    makeCerts(dir);
    assert.deepEqual(readdirSync(dir).sort(), ['agent-tgi', 'agent-vllm', 'ca', 'control-plane', 'router']);
    const want: Record<string, [string, string]> = {
      'control-plane': ['control-plane', 'DNS:control-plane'],
      router: ['router', 'DNS:router'],
      'agent-vllm': ['gpu-host-1-vllm', 'DNS:agent-vllm'],
      'agent-tgi': ['gpu-host-1-tgi', 'DNS:agent-tgi'],
    };
    const ca = new X509Certificate(read(join(dir, 'ca/ca.crt')));
    assert.ok(ca.ca, 'the CA certificate is a CA');
    for (const [svc, [cn, san]] of Object.entries(want)) {
      const d = join(dir, svc);
      assert.deepEqual(readdirSync(d).sort(), ['ca.crt', 'tls.crt', 'tls.key'], `${svc}: only its own files (no CA key)`);
      const cert = new X509Certificate(read(join(d, 'tls.crt')));
      assert.equal(cert.subject, `CN=${cn}`);
      assert.equal(cert.subjectAltName, san);
      assert.ok(cert.verify(ca.publicKey), `${svc}: signed by the CA`);
      assert.ok(!cert.ca, `${svc}: not a CA`);
      assert.equal(read(join(d, 'ca.crt')), read(join(dir, 'ca/ca.crt')));
      assert.equal(mode(join(d, 'tls.key')) & 0o077, 0, `${svc}: key readable by its owner only`);
      const ext = execFileSync('openssl', ['x509', '-in', join(d, 'tls.crt'), '-noout', '-ext', 'extendedKeyUsage'], { encoding: 'utf8' });
      assert.match(ext, /TLS Web Server Authentication, TLS Web Client Authentication/, `${svc}: serverAuth and clientAuth`);
    }
    assert.equal(mode(join(dir, 'ca/ca.key')) & 0o077, 0);
    // A second run keeps the CA and the certificates; a new service joins the same CA.
    const before = read(join(dir, 'router/tls.crt'));
    makeCerts(dir, 'agent-extra', 'gpu-host-2', 'DNS:gpu-host-2,IP:10.0.0.9');
    assert.equal(read(join(dir, 'router/tls.crt')), before);
    const extra = new X509Certificate(read(join(dir, 'agent-extra/tls.crt')));
    assert.equal(extra.subjectAltName, 'DNS:gpu-host-2, IP Address:10.0.0.9');
    assert.ok(extra.verify(ca.publicKey));
    // Bad input is refused, not half-done.
    const bad = spawnSync('sh', [rootPath('scripts/make-certs.sh'), dir, '../escape', 'x', 'DNS:x'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    const odd = spawnSync('sh', [rootPath('scripts/make-certs.sh'), dir, 'only-two', 'args'], { encoding: 'utf8' });
    assert.equal(odd.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function handshake(server: tls.TlsOptions, client: tls.ConnectionOptions): Promise<{ ok: boolean; peerCn?: string; error?: string }> {
  let peerCn: string | undefined;
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true }, (s) => {
    peerCn = s.getPeerCertificate().subject?.CN as string | undefined;
    s.end('ok');
  });
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const sock = tls.connect({ ...client, host: '127.0.0.1', port }, () => {});
      let data = '';
      sock.on('data', (b) => (data += String(b)));
      sock.on('end', () => resolve({ ok: data === 'ok', peerCn }));
      sock.on('error', (err) => resolve({ ok: false, error: err.message }));
      sock.setTimeout(10_000, () => sock.destroy(new Error('timeout')));
    });
  } finally {
    srv.close();
  }
}

test('the certificates do mutual TLS: router -> agent accepted, another CA refused both ways', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'icp-certs-'));
  const other = mkdtempSync(join(tmpdir(), 'icp-certs-other-'));
  try {
    makeCerts(dir);
    makeCerts(other, 'router', 'router', 'DNS:router', 'agent-vllm', 'gpu-host-1-vllm', 'DNS:agent-vllm');
    const files = (d: string, svc: string) => ({
      cert: read(join(d, svc, 'tls.crt')),
      key: read(join(d, svc, 'tls.key')),
      ca: read(join(d, svc, 'ca.crt')),
    });
    const agent = files(dir, 'agent-vllm');
    const router = files(dir, 'router');
    // The router dials `agent-vllm` (the advertised address), which the agent's SAN names.
    const good = await handshake(agent, { ...router, servername: 'agent-vllm' });
    assert.deepEqual(good, { ok: true, peerCn: 'router' });
    const cp = await handshake(agent, { ...files(dir, 'control-plane'), servername: 'agent-vllm' });
    assert.deepEqual(cp, { ok: true, peerCn: 'control-plane' });
    // A router certificate from another CA: the agent refuses it.
    const rogueClient = await handshake(agent, { ...files(other, 'router'), ca: router.ca, servername: 'agent-vllm' });
    assert.equal(rogueClient.ok, false);
    // An agent certificate from another CA: the router refuses it.
    const rogueAgent = await handshake({ ...files(other, 'agent-vllm'), ca: router.ca }, { ...router, servername: 'agent-vllm' });
    assert.equal(rogueAgent.ok, false);
    assert.match(rogueAgent.error ?? '', /certificate/i);
    // The wrong name: the agent's certificate is not valid for another service.
    const wrongName = await handshake(agent, { ...router, servername: 'agent-tgi' });
    assert.equal(wrongName.ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});

test('make-secrets.sh: tokens, Redis password and env files, each service only its own', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'icp-secrets-'));
  try {
    // Stands in for `credentials node-token` (the lead's CLI): prints a token derived from the secret and id.
    const mint = join(dir, 'mint.sh');
    writeFileSync(
      mint,
      '#!/bin/sh\n[ -n "$ICP_NODE_SECRET" ] || exit 1\nprintf "nt-%s-%s\\n" "$2" "$(printf %s "$ICP_NODE_SECRET" | cut -c1-4)"\n',
    );
    chmodSync(mint, 0o755);
    const out = join(dir, 's');
    const run = () =>
      execFileSync('sh', [rootPath('deploy/compose/make-secrets.sh'), out], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', NODE_TOKEN_CMD: mint },
      });
    run();
    const secret = read(join(out, 'control-plane/node-secret')).trim();
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.deepEqual(readdirSync(join(out, 'control-plane')).sort(), ['admin-token', 'node-secret', 'router-token']);
    assert.deepEqual(readdirSync(join(out, 'router')), ['router-token'], 'the router never gets the admin token');
    assert.equal(read(join(out, 'router/router-token')), read(join(out, 'control-plane/router-token')));
    assert.notEqual(read(join(out, 'control-plane/admin-token')), read(join(out, 'control-plane/router-token')));
    assert.equal(read(join(out, 'agent-vllm/node-token')).trim(), `nt-gpu-host-1-vllm-${secret.slice(0, 4)}`);
    assert.equal(read(join(out, 'agent-tgi/node-token')).trim(), `nt-gpu-host-1-tgi-${secret.slice(0, 4)}`);
    const redis = /^REDISCLI_AUTH=([0-9a-f]{64})$/m.exec(read(join(out, 'redis.env')))?.[1];
    assert.ok(redis, 'redis.env holds the password');
    assert.match(read(join(out, 'router.env')), new RegExp(`^REDIS_URL=redis://:${redis}@redis:6379/0$`, 'm'));
    assert.match(read(join(out, 'hf.env')), /^HF_TOKEN=/m);
    for (const f of ['control-plane/admin-token', 'router/router-token', 'agent-vllm/node-token', 'redis.env', 'router.env'])
      assert.equal(mode(join(out, f)) & 0o077, 0, `${f}: owner-only`);
    // Again: nothing is replaced (a rerun must not log every agent out).
    const admin = read(join(out, 'control-plane/admin-token'));
    run();
    assert.equal(read(join(out, 'control-plane/admin-token')), admin);
    // A failing mint is reported, not written as an empty token.
    const out2 = join(dir, 's2');
    const r = spawnSync('sh', [rootPath('deploy/compose/make-secrets.sh'), out2, 'agent-x=x'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', NODE_TOKEN_CMD: 'false' },
    });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /could not mint the node token for x/);
    assert.deepEqual(readdirSync(join(out2, 'agent-x')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
