import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../common/config.ts';
import { loadConfig, parseConfig, DEFAULT_CONFIG_PATH } from '../../../cli/config.ts';

describe('config', () => {
  it('loads the shipped default config', () => {
    const c = loadConfig(DEFAULT_CONFIG_PATH);
    assert.equal(c.agents.length, 2);
    assert.equal(c.simulators.length, 2);
    assert.equal(c.router.listen.port, 8080);
    assert.equal(c.logging.logContent, false);
  });

  it('fills defaults for an empty file', () => {
    const c = parseConfig({});
    assert.equal(c.router.statusStaleMs, 2_000);
    assert.equal(c.controlPlane.nodeTtlMs, 3_000);
    assert.deepEqual(c.agents, []);
  });

  it('names the field and the problem', () => {
    assert.throws(
      () => parseConfig({ router: { listen: { port: 'eighty' } } }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('router.listen.port'),
    );
    assert.throws(
      () => parseConfig({ agents: [{ id: 'a', listen: { port: 1 }, engine: { url: 'not a url' } }] }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('agents.0.engine.url'),
    );
    assert.throws(
      () => parseConfig({ routr: {} }),
      (e: unknown) => e instanceof ConfigError && /routr/.test(e.message),
    );
    const dup = { id: 'a', listen: { port: 1 }, engine: { url: 'http://x:1' } };
    assert.throws(
      () => parseConfig({ agents: [dup, dup] }),
      (e: unknown) => e instanceof ConfigError && e.message.includes("duplicate agent id 'a'"),
    );
  });

  it('a service given a bad config exits non-zero and says why', () => {
    const dir = mkdtempSync(join(tmpdir(), 'icp-config-'));
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, 'router:\n  listen: { port: -1 }\n');
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'router', '--config', file], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /router\.listen\.port/);
      writeFileSync(file, 'router: [unclosed\n');
      const r2 = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'router', '--config', file], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r2.status, 2);
      assert.match(r2.stderr, /not valid YAML/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
