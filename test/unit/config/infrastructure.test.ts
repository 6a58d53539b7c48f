// Redis URLs are resolved in one place with one precedence (common/infrastructure.ts): the role's
// own setting, then REDIS_URL in the environment, then router.auth.redisUrl.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRedisUrls } from '../../../common/infrastructure.ts';
import { controlPlaneInputs, parseConfig, redisUrlsOf, routerInputs } from '../../../cli/config.ts';

const OWN = 'redis://own:6379';
const ENV = 'redis://env:6379';
const SHARED = 'redis://shared:6379';

describe('Redis URLs per role', () => {
  it('own setting > REDIS_URL > shared, for every role', () => {
    assert.deepEqual(resolveRedisUrls({}, {}), {});
    const all = {
      limits: SHARED,
      usage: SHARED,
      idempotency: SHARED,
      cache: SHARED,
      batch: SHARED,
      shadow: SHARED,
      capacityHistory: SHARED,
    };
    assert.deepEqual(resolveRedisUrls({ shared: SHARED }, {}), all);
    assert.deepEqual(resolveRedisUrls({ shared: SHARED }, { REDIS_URL: ENV }), Object.fromEntries(Object.keys(all).map((k) => [k, ENV])));
    const r = resolveRedisUrls({ shared: SHARED, own: { batch: OWN } }, { REDIS_URL: ENV });
    assert.equal(r.batch, OWN);
    assert.equal(r.limits, ENV);
    // An empty REDIS_URL is unset, not an empty URL.
    assert.equal(resolveRedisUrls({ shared: SHARED }, { REDIS_URL: '' }).limits, SHARED);
    assert.equal(resolveRedisUrls({ shared: SHARED, off: ['usage'] }, {}).usage, undefined);
  });

  it('the config file maps onto the roles; usage records use Redis only with auth required', () => {
    const file = {
      router: { auth: { redisUrl: SHARED }, batch: { redisUrl: 'redis://batch:1' }, cache: { redisUrl: 'redis://cache:1' } },
      controlPlane: { capacity: { store: { kind: 'redis', redisUrl: 'redis://capacity:1' } } },
    };
    const off = redisUrlsOf(parseConfig(file), {});
    assert.deepEqual(off, {
      limits: SHARED,
      idempotency: SHARED,
      cache: 'redis://cache:1',
      batch: 'redis://batch:1',
      shadow: SHARED,
      capacityHistory: 'redis://capacity:1',
    });
    const required = redisUrlsOf(parseConfig({ ...file, router: { ...file.router, auth: { mode: 'required', redisUrl: SHARED } } }), {
      REDIS_URL: ENV,
    });
    assert.equal(required.usage, ENV);
    assert.equal(required.batch, 'redis://batch:1');
    assert.equal(required.capacityHistory, 'redis://capacity:1');
  });

  it('router and control plane receive the same resolution, from the env they are given', () => {
    const config = parseConfig({ router: { auth: { mode: 'required' } } });
    const env = { REDIS_URL: ENV };
    assert.deepEqual(routerInputs(config, env).redis, controlPlaneInputs(config, env).redis);
    assert.equal(routerInputs(config, env).redis.usage, ENV);
    assert.deepEqual(routerInputs(config, {}).redis, {});
  });

  it("the control plane gets the agents' metrics URLs from their own entries", () => {
    const agent = (id: string, httpListen: { host: string; port: number }, advertiseAddress?: string) => ({
      id,
      listen: { port: 1 },
      httpListen,
      advertiseAddress,
      engine: { url: 'http://127.0.0.1:1' },
    });
    const config = parseConfig({
      agents: [
        agent('a', { host: '127.0.0.1', port: 9001 }),
        agent('b', { host: '0.0.0.0', port: 9002 }, 'gpu-b:50051'),
        agent('c', { host: '127.0.0.1', port: 0 }),
      ],
    });
    assert.deepEqual(controlPlaneInputs(config, {}).agentMetricsUrls, { a: 'http://127.0.0.1:9001', b: 'http://gpu-b:9002' });
  });
});
