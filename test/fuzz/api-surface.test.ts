// Fuzz EVERY HTTP route of the router and the control plane (admin API, nodes API, capacity,
// dashboard, watch streams), enumerated from fastify's own route table (common/http.ts routesOf)
// so that a new route is fuzzed without anyone listing it: random path parameters, query
// strings, bodies (test/fuzz/generators.ts), methods and credentials (half the control-plane
// cases carry the real admin token, so handlers behind the auth check run too). Zero 5xx, every
// 4xx in OpenAI's error shape, both processes alive, RSS bounded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type Stack } from '../helpers/stack.ts';
import { enumerateRoutes } from '../helpers/routes.ts';
import type { RouteEntry } from '../../common/http.ts';
import { FUZZ_SEED, fuzzCases, isOpenAIError, makeFuzz, rng, rssBytes, send } from './generators.ts';
import { CONTROL_PLANE_ACCESS } from '../../control-plane/api/access.ts';
import { tokenSha256, type Role } from '../../common/credentials.ts';

const CASES = fuzzCases(2000);
const ADMIN_TOKEN = 'fuzz-admin-token-' + 'x'.repeat(24);
const MEMORY_BOUND = 256 * 1024 * 1024;

/** Allowed 5xx: a not-ready probe, and the Drain of a registered node whose agent is not there. */
function allowed5xx(route: RouteEntry, status: number, text: string): boolean {
  if (route.url === '/readyz' && status === 503) return true;
  return status === 502 && route.url === '/v1/nodes/:id/drain' && text.includes('agent_unreachable');
}

function caseGenerator(seed: number, routes: readonly RouteEntry[], authHeaders: () => Record<string, string>) {
  const r = rng(seed);
  const f = makeFuzz(r);
  const plausible = () => {
    const o: Record<string, unknown> = {};
    for (const k of [
      'name',
      'id',
      'address',
      'models',
      'policy',
      'tags',
      'graceMs',
      'disabled',
      'records',
      'model',
      'messages',
      'input',
      'report',
      'rpm',
      'labels',
    ])
      if (r() < 0.3) o[k] = f.value(1, ['rpm', 'tpm', 'allowedModels', 'maxLane', 'x', 'tenantId', 'keyId']);
    return o;
  };
  return () => {
    const route = f.pick(routes);
    const method = r() < 0.1 ? f.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) : route.method;
    const path =
      route.url.replace(/:[A-Za-z]+/g, () => f.param()).replace(/\*$/, () => f.param()) +
      f.query([
        'window',
        'growth',
        'model',
        'node',
        'tenant',
        'since',
        'until',
        'limit',
        'from',
        'to',
        'addNodes',
        'removeNodes',
        'sloTtftSeconds',
      ]);
    return { route, method, path, body: f.body(plausible), headers: authHeaders() };
  };
}

describe('API surface fuzz: every route of the router and the control plane', () => {
  let stack: Stack;
  let dir: string;
  let routes: { router: readonly RouteEntry[]; controlPlane: readonly RouteEntry[] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icp-fuzz-'));
    routes = await enumerateRoutes(dir);
    const tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, ADMIN_TOKEN);
    stack = await startStack({
      sims: [],
      agents: [],
      controlPlane: { adminTokenFile: tokenFile },
      // Keys required: the tenancy hook sees every generated Authorization header.
      router: { auth: { mode: 'required' } },
      routerEnv: { ICP_ADMIN_TOKEN_SHA256: tokenSha256(ADMIN_TOKEN) },
    });
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('enumerates the routes from fastify (the admin API, nodes API and generation routes are there)', () => {
    const cp = routes.controlPlane.map((x) => `${x.method} ${x.url}`);
    for (const must of [
      'POST /v1/admin/tenants',
      'DELETE /v1/admin/keys/:id',
      'POST /v1/nodes/register',
      'GET /v1/capacity',
      'GET /v1/policy/watch',
    ])
      assert.ok(cp.includes(must), `${must} in ${cp.join(', ')}`);
    const rt = routes.router.map((x) => `${x.method} ${x.url}`);
    for (const must of ['POST /v1/chat/completions', 'POST /v1/completions', 'GET /v1/models', 'GET /metrics'])
      assert.ok(rt.includes(must), `${must} in ${rt.join(', ')}`);
  });

  for (const surface of ['control plane', 'router'] as const) {
    it(`${surface}: ${CASES} generated requests over every route, no 5xx, OpenAI-shaped 4xx, bounded RSS (seed ${FUZZ_SEED})`, async () => {
      const isCp = surface === 'control plane';
      const base = isCp ? stack.controlPlane!.url : stack.routerUrl;
      const proc = isCp ? stack.controlPlane! : stack.router;
      const r = rng(FUZZ_SEED + 1);
      // Every role's credential and none: the role each case carries, to check the access table.
      let role: Role | 'none' = 'none';
      const auth = (): Record<string, string> => {
        const x = r();
        role = 'none';
        if (isCp && x < 0.3) return ((role = 'operator'), { authorization: `Bearer ${ADMIN_TOKEN}` });
        if (isCp && x < 0.4) return ((role = 'router'), { authorization: `Bearer ${stack.credentials.routerToken}` });
        if (isCp && x < 0.5)
          return ((role = 'node'), { authorization: `Bearer ${stack.credentials.nodeToken(r() < 0.5 ? 'x' : 'gpu-fuzz')}` });
        if (x < 0.6) return {};
        return {
          authorization: [
            `Bearer wrong`,
            'Basic eDp5',
            'Bearer ',
            `Bearer ${'a'.repeat(8_000)}`,
            'Bearer sk-icp-000000000000-' + 'A'.repeat(43),
            `bearer ${ADMIN_TOKEN} extra`,
            'Bearer constructor',
            'Bearer __proto__',
          ][Math.floor(r() * 8)]!,
        };
      };
      const next = caseGenerator(FUZZ_SEED + (isCp ? 7 : 13), isCp ? routes.controlPlane : routes.router, auth);
      const statuses = new Map<number, number>();
      const failures: string[] = [];
      const rss0 = await rssBytes(proc.child.pid!);
      let rssMax = rss0;
      for (let i = 0; i < CASES; i++) {
        const c = next();
        const res = await send(base, c.method, c.path, c.body, c.headers);
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        let bad =
          res.statusCode >= 500 ? !allowed5xx(c.route, res.statusCode, res.text) : res.statusCode >= 400 && !isOpenAIError(res.text);
        if (isCp && !bad) {
          // The access table (control-plane/api/access.ts) holds: a role it does not name is refused
          // before anything else; one it names is never refused for its role.
          // Only where the generated method still names the route (a changed method is a 404 route).
          const access = CONTROL_PLANE_ACCESS.get(`${c.method} ${c.route.url}`);
          const refused = res.statusCode === 401 || (res.statusCode === 403 && /role_not_allowed/.test(res.text));
          const mayCall = access === 'public' || (role !== 'none' && access !== undefined && access.includes(role));
          // 400/404/414 before routing (a malformed or over-long path matches no route); 405 none here.
          const routed = ![400, 404, 414, 431].includes(res.statusCode) || refused;
          if (access !== undefined && routed && refused === mayCall) bad = true;
        }
        if (bad && failures.length < 8)
          failures.push(
            `case ${i}: ${c.method} ${c.path.slice(0, 120)} as ${role} -> ${res.statusCode} ${res.text.slice(0, 200)} (body ${String(c.body.body).slice(0, 80)})`,
          );
        if (i % 100 === 0) rssMax = Math.max(rssMax, await rssBytes(proc.child.pid!));
      }
      assert.deepEqual(failures, [], `statuses: ${JSON.stringify([...statuses])}`);
      assert.equal(proc.child.exitCode, null, `${surface} exited`);
      const health = await fetch(base + '/healthz');
      assert.equal(health.status, 200);
      assert.ok(rssMax - rss0 < MEMORY_BOUND, `RSS grew from ${(rss0 / 2 ** 20).toFixed(0)} to ${(rssMax / 2 ** 20).toFixed(0)} MiB`);
      // The generator reaches past validation: some requests succeed, most are refused.
      assert.ok(
        [...statuses.keys()].some((s) => s < 300),
        `some 2xx: ${JSON.stringify([...statuses])}`,
      );
      assert.ok((statuses.get(400) ?? 0) + (statuses.get(401) ?? 0) > CASES / 5);
      console.log(
        `# ${surface}: ${CASES} cases, statuses ${JSON.stringify(Object.fromEntries(statuses))}, RSS ${(rss0 / 2 ** 20).toFixed(0)} -> max ${(rssMax / 2 ** 20).toFixed(0)} MiB`,
      );
    });
  }
});
