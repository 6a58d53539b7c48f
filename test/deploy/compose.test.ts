// CI checks for the compose files: they parse offline (Debian's docker-compose v1.29 `config`,
// no engine needed, and the Compose Specification JSON schema vendored in deploy/schemas/), and
// the GPU file has what issue 10 asks for (GPU reservations, healthchecks, depends_on conditions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { parse as parseYaml } from 'yaml';
import { checkGpuCompose } from './compose-checks.ts';
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

function composeConfig(file: string): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'icp-compose-'));
  try {
    // The GPU file reads its secrets from an env file outside the repo; give it the example.
    const secrets = join(dir, 'secrets.env');
    copyFileSync(rootPath('deploy/compose/secrets.env.example'), secrets);
    const out = execFileSync('docker-compose', ['-f', rootPath(file), '--project-directory', rootPath('.'), 'config'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: dir, ICP_SECRETS_ENV: secrets },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return parseYaml(out);
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
      env: { PATH: process.env.PATH ?? '', HOME: dir, ICP_SECRETS_ENV: rootPath('deploy/compose/secrets.env.example') },
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
    ['token inline', (d) => (d.services.vllm.environment.HF_TOKEN = 'hf_x'), /HF_TOKEN set inline/],
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
