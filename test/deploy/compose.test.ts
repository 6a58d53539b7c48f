// CI checks for the compose files: they parse offline (Debian's docker-compose v1.29 `config`,
// no engine needed, and the Compose Specification JSON schema vendored in deploy/schemas/), and
// the GPU file has what issue 10 asks for (GPU reservations, healthchecks, depends_on conditions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { parse as parseYaml } from 'yaml';
import { checkComposeSecurity, checkGpuCompose, stateDirProblems } from './compose-checks.ts';
import { clone, readYaml, rootPath, type Doc } from './lib.ts';

const require = createRequire(import.meta.url);
// ajv and ajv-formats are CommonJS; their default export shape differs between loaders.
const Ajv = require('ajv').default as typeof import('ajv').default;
const addFormats = require('ajv-formats').default as typeof import('ajv-formats').default;

const FILES = ['docker-compose.gpu.yml', 'docker-compose.sim.yml'];

function composeValidator() {
  const schema = JSON.parse(readFileSync(rootPath('deploy/schemas/compose-spec.json'), 'utf8'));
  // It declares draft-07 by an https URL ajv does not map to its bundled meta-schema; ajv's default is draft-07.
  delete schema.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$/);
  return ajv.compile(schema);
}

test('compose files validate against the Compose Specification JSON schema', () => {
  const validate = composeValidator();
  for (const f of FILES) {
    const ok = validate(readYaml(f));
    assert.ok(ok, `${f}: ${JSON.stringify(validate.errors, null, 1)}`);
  }
});

test('the schema check rejects a broken file (typo in a key, wrong type)', () => {
  const validate = composeValidator();
  const doc = readYaml('docker-compose.gpu.yml');
  const typo = clone(doc);
  typo.services.vllm.healthcheck.start_perod = typo.services.vllm.healthcheck.start_period;
  assert.equal(validate(typo), false);
  const wrongType = clone(doc);
  wrongType.services.router.ports = 8080;
  assert.equal(validate(wrongType), false);
});

// docker-compose (v1.29, Debian's package) runs `config` without an engine. .ci/run installs it.
function dockerCompose(): string | undefined {
  const r = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Secrets directory the resolved files point at (docker-compose reads the env files in it). */
const SECRETS_DIR = '/run/icp-test-secrets';

function composeConfig(file: string): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'icp-compose-'));
  try {
    // The files read their env files from the secrets directory outside the repo; give them the examples.
    const secrets = join(dir, 'secrets');
    cpSync(rootPath('deploy/compose/secrets.example'), secrets, { recursive: true });
    const out = execFileSync('docker-compose', ['-f', rootPath(file), '--project-directory', rootPath('.'), 'config'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: dir, ICP_SECRETS_DIR: secrets, ICP_DEV_SECRETS_DIR: secrets },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Name the directory the same in every run, so problems read the same.
    return parseYaml(out.split(secrets).join(SECRETS_DIR));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const composeVersion = dockerCompose();
const skipCompose = composeVersion
  ? false
  : process.env.CI
    ? false
    : 'docker-compose not installed (apt-get install docker-compose; CI installs it)';

test('docker-compose config parses both files offline', { skip: skipCompose }, () => {
  assert.ok(composeVersion, 'docker-compose is required in CI (.ci/run installs it)');
  for (const f of FILES) {
    const parsed = composeConfig(f) as { services: Record<string, unknown> };
    assert.ok(Object.keys(parsed.services).length >= 6, `${f}: too few services`);
  }
});

test('docker-compose rejects a broken file (the parse check can fail)', { skip: skipCompose }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'icp-compose-bad-'));
  try {
    const bad = join(dir, 'docker-compose.yml');
    const text = readFileSync(rootPath('docker-compose.gpu.yml'), 'utf8').replace(
      'condition: service_healthy',
      'condition: service_wellish',
    );
    execFileSync('sh', ['-c', `cat > '${bad}'`], { input: text });
    const r = spawnSync('docker-compose', ['-f', bad, 'config'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: dir, ICP_SECRETS_DIR: rootPath('deploy/compose/secrets.example') },
    });
    assert.notEqual(r.status, 0, 'docker-compose accepted an invalid depends_on condition');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'GPU compose (as docker-compose config resolves it): engines, GPUs, healthchecks, depends_on, cache, Redis, monitoring',
  { skip: skipCompose },
  () => {
    assert.deepEqual(checkGpuCompose(composeConfig('docker-compose.gpu.yml'), { resolved: true }), []);
  },
);

test('GPU compose (as written): the same checks pass', () => {
  assert.deepEqual(checkGpuCompose(readYaml('docker-compose.gpu.yml')), []);
});

test('GPU compose checks fail when a required part is removed', () => {
  const doc = readYaml('docker-compose.gpu.yml');
  const broken: [string, (d: Doc) => void, RegExp][] = [
    ['no GPU reservation on vllm', (d) => delete d.services.vllm.deploy, /vllm: no GPU device reservation/],
    ['agent without GPU (no nvidia-smi)', (d) => delete d.services['agent-tgi'].deploy, /agent-tgi: no GPU device reservation/],
    ['wrong driver', (d) => (d.services.tgi.deploy.resources.reservations.devices[0].driver = 'amd'), /driver is amd/],
    ['no capabilities', (d) => (d.services.tgi.deploy.resources.reservations.devices[0].capabilities = []), /capabilities \[gpu\]/],
    ['no device_ids', (d) => delete d.services.vllm.deploy.resources.reservations.devices[0].device_ids, /device_ids/],
    ['same GPU twice', (d) => (d.services.tgi.deploy.resources.reservations.devices[0].device_ids = ['0']), /GPU 0 given to both/],
    ['short start_period', (d) => (d.services.vllm.healthcheck.start_period = '30s'), /start_period 30s shorter/],
    ['no engine healthcheck', (d) => delete d.services.tgi.healthcheck, /tgi: no healthcheck/],
    [
      'depends_on without condition',
      (d) => (d.services['agent-vllm'].depends_on = ['vllm', 'control-plane']),
      /agent-vllm: depends_on vllm is not condition: service_healthy/,
    ],
    ['latest engine image', (d) => (d.services.vllm.image = 'vllm/vllm-openai:latest'), /not pinned/],
    ['no shared cache', (d) => (d.services.tgi.volumes = []), /hf-cache/],
    ['redis not persistent', (d) => (d.services.redis.volumes = []), /redis: \/data/],
    ['agent killed before drain', (d) => (d.services['agent-vllm'].stop_grace_period = '10s'), /drainGraceMs/],
    ['monitoring always on', (d) => delete d.services.grafana.profiles, /grafana: not in the optional/],
    ['router without redis', (d) => delete d.services.redis, /service redis missing/],
  ];
  for (const [what, mutate, expected] of broken) {
    const d = clone(doc);
    mutate(d);
    const problems = checkGpuCompose(d);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected a problem matching ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});

// ---------- trust boundaries (issue 17, item 5) ----------

const GPU = { configFile: 'deploy/compose/gpu-host.yaml', secretsDir: '/etc/icp/secrets', engineNetworks: true };
const SIM = { configFile: 'deploy/compose/sim.yaml', secretsDir: './deploy/compose/dev-secrets' };

test('GPU compose (as written): auth, mTLS mounted, Redis password, state volume, per-container secrets, vLLM media', () => {
  assert.deepEqual(checkComposeSecurity(readYaml('docker-compose.gpu.yml'), GPU), []);
});

test('sim compose (as written): the same trust boundaries with dev credentials', () => {
  assert.deepEqual(checkComposeSecurity(readYaml('docker-compose.sim.yml'), SIM), []);
});

test(
  'both compose files as docker-compose config resolves them: each container gets only its own credentials',
  { skip: skipCompose },
  () => {
    assert.deepEqual(
      checkComposeSecurity(composeConfig('docker-compose.gpu.yml'), { ...GPU, secretsDir: SECRETS_DIR, resolved: true }),
      [],
    );
    assert.deepEqual(
      checkComposeSecurity(composeConfig('docker-compose.sim.yml'), { ...SIM, secretsDir: SECRETS_DIR, resolved: true }),
      [],
    );
  },
);

test('the trust-boundary checks fail on a broken copy of each setting', () => {
  const doc = readYaml('docker-compose.gpu.yml');
  const cfg = readYaml(GPU.configFile);
  const env = (d: Doc, svc: string) => (d.services[svc].environment ??= {});
  const mounts = (d: Doc, svc: string) => d.services[svc].volumes as string[];
  const broken: [string, (d: Doc, c: Doc) => void, RegExp][] = [
    ['auth off', (_d, c) => (c.router.auth.mode = 'off'), /router.auth.mode is off/],
    ['auth unset', (_d, c) => delete c.router.auth, /auth.mode is unset/],
    ['limits store fails open', (_d, c) => (c.router.auth.onStoreError = 'open'), /onStoreError is open/],
    ['no admin token file', (_d, c) => delete c.controlPlane.adminTokenFile, /adminTokenFile: not set/],
    [
      'router holds the admin token',
      (_d, c) => (c.router.adminTokenFile = '/etc/icp/secrets/admin-token'),
      /router gets no admin credential/,
    ],
    ['router without its own credential', (_d, c) => delete c.router.controlPlaneTokenFile, /controlPlaneTokenFile: not set/],
    ['agent plaintext', (_d, c) => delete c.agents[0].tls, /agents\[0\].*tls: not set/],
    ['agent TLS without client certs', (_d, c) => (c.agents[1].tls.requireClientCert = false), /requireClientCert is false/],
    ['agent without node token', (_d, c) => delete c.agents[0].nodeTokenFile, /nodeTokenFile: not set/],
    ['router plaintext to agents', (_d, c) => delete c.router.agentTls, /router.agentTls: not set/],
    ['control plane forgets tenants', (_d, c) => delete c.controlPlane.stateFile, /stateFile: not set/],
    [
      'state not on a volume',
      (d) => (d.services['control-plane'].volumes = mounts(d, 'control-plane').filter((v) => !v.startsWith('control-plane-state'))),
      /stateFile .* not on a mounted volume/,
    ],
    ['state on a host path', (d) => (mounts(d, 'control-plane')[2] = './state:/var/lib/icp'), /not a named \(persistent\) volume/],
    [
      'certificates not mounted',
      (d) => (d.services['agent-vllm'].volumes = mounts(d, 'agent-vllm').slice(0, 1)),
      /agent-vllm: agents\[gpu-host-1-vllm\].tls.certFile .* not in its mounted secrets/,
    ],
    [
      "agent gets another agent's key",
      (d) => mounts(d, 'agent-tgi').push('${ICP_SECRETS_DIR:-/etc/icp/secrets}/agent-vllm:/etc/icp/other:ro'),
      /agent-tgi: mounts agent-vllm/,
    ],
    [
      'router gets the control plane secrets',
      (d) => (mounts(d, 'router')[1] = '${ICP_SECRETS_DIR:-/etc/icp/secrets}/control-plane:/etc/icp/secrets:ro'),
      /router: mounts control-plane/,
    ],
    ['CA key mounted', (d) => mounts(d, 'router').push('/etc/icp/secrets/ca:/ca:ro'), /router: mounts ca/],
    [
      'secrets writable',
      (d) => (mounts(d, 'router')[1] = '${ICP_SECRETS_DIR:-/etc/icp/secrets}/router:/etc/icp/secrets'),
      /not mounted read-only/,
    ],
    [
      'Grafana gets the HF token',
      (d) => d.services.grafana.env_file.push('${ICP_SECRETS_DIR:-/etc/icp/secrets}/hf.env'),
      /grafana: gets env file hf.env/,
    ],
    [
      'vLLM gets the router env',
      (d) => (d.services.vllm.env_file = ['${ICP_SECRETS_DIR:-/etc/icp/secrets}/router.env']),
      /vllm: gets env file router.env/,
    ],
    [
      'one secrets file for all',
      (d) => (d.services.tgi.env_file = ['/etc/icp/secrets.env']),
      /tgi: env file \/etc\/icp\/secrets.env is outside/,
    ],
    ['token inline', (d) => (env(d, 'agent-vllm').ICP_NODE_TOKEN = 'x'), /agent-vllm: ICP_NODE_TOKEN set inline/],
    ['HF token inline', (d) => (env(d, 'vllm').HF_TOKEN = 'hf_x'), /vllm: HF_TOKEN set inline/],
    ['admin token inline', (d) => (env(d, 'router').ICP_ADMIN_TOKEN = 'x'), /router: ICP_ADMIN_TOKEN set inline/],
    ['unsafe override', (d) => (env(d, 'router')['ICP_DANGEROUSLY_ALLOW_UNAUTHENTICATED_NETWORK'] = '1'), /router: sets ICP_DANGEROUSLY/],
    ['Redis without password', (d) => (d.services.redis.command = ['redis-server', '--appendonly', 'yes']), /no requirepass/],
    [
      'Redis password on the command line',
      (d) => (d.services.redis.command = ['redis-server', '--requirepass', 'pw']),
      /on the command line/,
    ],
    ['REDIS_URL inline without password', (d) => (env(d, 'router').REDIS_URL = 'redis://redis:6379/0'), /router: REDIS_URL set inline/],
    ['router without its env file', (d) => delete d.services.router.env_file, /router: REDIS_URL not from its env file/],
    ['vLLM fetches any media', (d) => (d.services.vllm.command = d.services.vllm.command.slice(0, -2)), /--allowed-media-domains not set/],
    ['vLLM any domain', (d) => (d.services.vllm.command[d.services.vllm.command.length - 1] = '*'), /--allowed-media-domains not set/],
    ['vLLM reads files', (d) => d.services.vllm.command.push('--allowed-local-media-path', '/'), /--allowed-local-media-path/],
    ['vLLM follows redirects', (d) => delete d.services.vllm.environment.VLLM_MEDIA_URL_ALLOW_REDIRECTS, /VLLM_MEDIA_URL_ALLOW_REDIRECTS/],
    ['engine on the shared network', (d) => d.services.tgi.networks.push('default'), /tgi: on the shared default network/],
    [
      'router reaches an engine directly',
      (d) => (d.services.router.networks = ['default', 'engine-vllm']),
      /vllm: router shares network engine-vllm/,
    ],
    ['control plane published', (d) => (d.services['control-plane'].ports = ['8081:8081']), /published beyond 127.0.0.1/],
    ['agent runs an unknown node', (d) => (d.services['agent-tgi'].command[2] = 'gpu-host-9'), /agent-tgi: its --id is not an agent/],
    ['Redis password not from its env file', (d) => delete d.services.redis.env_file, /redis: password not from its env file/],
    ['no router token for the control plane', (_d, c) => delete c.controlPlane.routerTokenFile, /routerTokenFile: not set/],
    ['no node secret', (_d, c) => delete c.controlPlane.nodeSecretFile, /nodeSecretFile: not set/],
    ['control plane plaintext to agents', (_d, c) => delete c.controlPlane.agentTls, /controlPlane.agentTls: not set/],
    ['Redis password in the config', (_d, c) => (c.router.auth.redisUrl = 'redis://:pw@redis:6379/0'), /auth.redisUrl: a password written/],
    ['relative key path', (_d, c) => (c.agents[0].tls.keyFile = 'tls.key'), /tls.keyFile: not an absolute file path/],
    ['no Redis at all', (d) => delete d.services.redis, /no redis service/],
  ];
  for (const [what, mutate, expected] of broken) {
    const d = clone(doc);
    const c = clone(cfg);
    mutate(d, c);
    const problems = checkComposeSecurity(d, { ...GPU, config: c });
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected a problem matching ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});

test('the resolved checks catch a credential given to the wrong container', () => {
  const resolved = readYaml('docker-compose.gpu.yml');
  // What docker-compose config makes of an env file given to the wrong service: its keys inlined.
  resolved.services.grafana.environment.HF_TOKEN = 'hf_x';
  resolved.services.vllm.environment.ICP_ROUTER_TOKEN = 'x';
  resolved.services.router.environment.REDIS_URL = 'redis://redis:6379/0';
  const problems = checkComposeSecurity(resolved, { ...GPU, resolved: true });
  for (const re of [/grafana: gets HF_TOKEN/, /vllm: gets ICP_ROUTER_TOKEN/, /router: REDIS_URL carries no Redis password/])
    assert.ok(
      problems.some((p) => re.test(p)),
      `${re}: ${JSON.stringify(problems)}`,
    );
});

test("the image makes the state volume's mount point for the service user (a named volume takes its owner)", () => {
  const compose = readYaml('docker-compose.gpu.yml');
  const target = (compose.services['control-plane'].volumes as string[]).find((v) => v.startsWith('control-plane-state:'))?.split(':')[1];
  assert.equal(target, '/var/lib/icp');
  const dockerfile = readFileSync(rootPath('Dockerfile'), 'utf8');
  assert.deepEqual(stateDirProblems(dockerfile, target), []);
  assert.equal(stateDirProblems(dockerfile.replace('-o node -g node', '-o root -g root'), target).length, 1);
  assert.equal(stateDirProblems(dockerfile, '/var/lib/other').length, 1);
});
