// The laptop compose file runs the same stack as the README's `npm ci && npm start`: the config
// it mounts (deploy/compose/sim.yaml) equals config/local.yaml except for addresses and the
// security a networked deployment needs (credentials, mTLS, auth, the state file: those are
// checked by compose.test.ts's trust-boundary checks), and its containers are exactly that
// config's simulators, agents, control plane and router.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../../cli/config.ts';
import { volumeMounts } from './compose-checks.ts';
import { clone, readText, readYaml, rootPath, type Doc } from './lib.ts';

const SIM_CONFIG = 'deploy/compose/sim.yaml';

/** Settings a networked deployment adds to the loopback default (credential files, TLS, auth, state). */
const DEPLOYMENT_SECURITY = {
  controlPlane: ['adminTokenFile', 'routerTokenFile', 'nodeSecretFile', 'stateFile', 'agentTls', 'tls'],
  router: ['controlPlaneTokenFile', 'adminTokenSha256', 'agentTls', 'controlPlaneTls'],
  auth: ['mode', 'onStoreError'],
  agent: ['nodeTokenFile', 'tls', 'controlPlaneTls'],
};

/** Drops what legitimately differs between one machine and one container per service: addresses, deployment security. */
function withoutAddresses(c: Config): unknown {
  const x = clone(c) as Doc;
  for (const k of DEPLOYMENT_SECURITY.controlPlane) delete x.controlPlane[k];
  for (const k of DEPLOYMENT_SECURITY.router) delete x.router[k];
  for (const k of DEPLOYMENT_SECURITY.auth) delete x.router.auth[k];
  for (const a of x.agents) for (const k of DEPLOYMENT_SECURITY.agent) delete a[k];
  // The capacity history and shadow records live on the control plane's state volume in a container.
  delete x.controlPlane.capacity.store.path;
  delete x.controlPlane.shadow.store.path;
  delete x.controlPlaneUrl;
  delete x.controlPlane.listen.host;
  delete x.router.listen.host;
  for (const a of x.agents) {
    delete a.listen.host;
    delete a.advertiseAddress;
    if (a.httpListen) delete a.httpListen.host;
    const u = new URL(a.engine.url);
    a.engine.url = `${u.protocol}//ENGINE:${u.port}${u.pathname}`;
  }
  return x;
}

export function compareSimConfig(local: Config, sim: Config): string[] {
  const problems: string[] = [];
  try {
    assert.deepEqual(withoutAddresses(sim), withoutAddresses(local));
  } catch (err) {
    problems.push(`config differs beyond addresses: ${(err as Error).message}`);
  }
  for (const a of sim.agents) {
    const engine = new URL(a.engine.url);
    const sim0 = sim.simulators.find((s) => s.id === engine.hostname);
    if (!sim0) problems.push(`agent ${a.id}: engine host ${engine.hostname} is not a simulator id (compose service)`);
    else if (String(sim0.port) !== engine.port)
      problems.push(`agent ${a.id}: engine port ${engine.port} != simulator ${sim0.id} port ${sim0.port}`);
    if (sim.controlPlaneUrl && a.listen.host === '127.0.0.1') problems.push(`agent ${a.id}: listens on loopback inside its container`);
  }
  if (sim.router.listen.host === '127.0.0.1') problems.push('router listens on loopback inside its container');
  return problems;
}

function argAfter(args: string[], flag: string) {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

export function checkSimCompose(doc: Doc, sim: Config): string[] {
  const problems: string[] = [];
  const services = doc.services ?? {};
  for (const s of sim.simulators) {
    const svc = services[s.id];
    if (!svc) {
      problems.push(`no service for simulator ${s.id}`);
      continue;
    }
    const args = (svc.command ?? []).map(String);
    if (!(svc.entrypoint ?? []).join(' ').includes('test/sim/vllm/main.ts')) problems.push(`${s.id}: does not run test/sim/vllm/main.ts`);
    if (argAfter(args, '--port') !== String(s.port)) problems.push(`${s.id}: --port ${argAfter(args, '--port')} != ${s.port}`);
    if (argAfter(args, '--model') !== s.model) problems.push(`${s.id}: --model ${argAfter(args, '--model')} != ${s.model}`);
    if (Number(argAfter(args, '--speed')) !== s.speed) problems.push(`${s.id}: --speed ${argAfter(args, '--speed')} != ${s.speed}`);
    if (argAfter(args, '--host') !== '0.0.0.0') problems.push(`${s.id}: not listening on 0.0.0.0`);
  }
  const agentServices = Object.entries<Doc>(services).filter(([, v]) => (v.command ?? [])[0] === 'node-agent');
  const ids = agentServices.map(([, v]) => argAfter(v.command, '--id')).sort();
  const want = sim.agents.map((a) => a.id).sort();
  if (JSON.stringify(ids) !== JSON.stringify(want)) problems.push(`agent services run ${ids}, config has ${want}`);
  for (const a of sim.agents) {
    const host = a.advertiseAddress?.split(':')[0];
    const entry = agentServices.find(([, v]) => argAfter(v.command, '--id') === a.id);
    if (entry && entry[0] !== host) problems.push(`agent ${a.id}: advertised as ${host} but its service is ${entry[0]}`);
  }
  for (const name of ['router', 'control-plane']) if (!services[name]) problems.push(`no ${name} service`);
  for (const [name, svc] of Object.entries<Doc>(services)) {
    if (!svc.build) continue;
    const cfg = volumeMounts(svc).find((m) => m.target === '/etc/icp/config.yaml');
    if (!cfg || cfg.source.replace(/^\.\//, '') !== SIM_CONFIG) problems.push(`${name}: does not mount ${SIM_CONFIG}`);
    if (svc.deploy?.resources?.reservations?.devices) problems.push(`${name}: reserves a GPU in the no-GPU file`);
  }
  return problems;
}

const local = loadConfig(DEFAULT_CONFIG_PATH);
const sim = loadConfig(rootPath(SIM_CONFIG));
const compose = readYaml('docker-compose.sim.yml');

test("README's start command runs config/local.yaml", () => {
  const readme = readText('README.md');
  assert.ok(readme.includes('npm ci && npm start'), 'README lost its start command');
  const pkg = JSON.parse(readText('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, 'tsx cli/main.ts start', 'npm start no longer runs the default config');
  assert.equal(DEFAULT_CONFIG_PATH, rootPath('config/local.yaml'));
});

test('deploy/compose/sim.yaml is config/local.yaml with container addresses', () => {
  assert.deepEqual(compareSimConfig(local, sim), []);
});

test('docker-compose.sim.yml runs that config: one container per simulator, agent, control plane and router', () => {
  assert.deepEqual(checkSimCompose(compose, sim), []);
});

test('the comparison fails when the two drift apart', () => {
  const drifted = clone(sim);
  drifted.simulators[1]!.speed = 0.75;
  assert.ok(compareSimConfig(local, drifted).length > 0, 'a changed simulator speed went unnoticed');
  const alias = clone(sim);
  alias.router.aliases['chat-default'] = 'other';
  assert.ok(compareSimConfig(local, alias).length > 0, 'a changed alias went unnoticed');
  const ttl = clone(sim);
  ttl.controlPlane.nodeTtlMs = 9000;
  assert.ok(compareSimConfig(local, ttl).length > 0, 'a changed control-plane setting beside the security ones went unnoticed');
  const c = clone(compose);
  c.services['vllm-b'].command[c.services['vllm-b'].command.indexOf('--speed') + 1] = '1.0';
  assert.ok(checkSimCompose(c, sim).some((p) => p.includes('--speed')));
  const noAgent = clone(compose);
  delete noAgent.services['agent-gpu-b'];
  assert.ok(checkSimCompose(noAgent, sim).some((p) => p.includes('agent services')));
});
