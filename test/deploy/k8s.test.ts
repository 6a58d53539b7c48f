// CI checks for deploy/k8s: every manifest validates against the Kubernetes OpenAPI schema
// (npm `kubernetes-models`, generated from it; offline), unknown fields are rejected (TypeScript
// excess-property check against the same package's types, like kubeconform -strict), and the
// probes, resources and drain settings are what issue 10 asks for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { checkCertManager, checkK8s, checkK8sSecurity } from './k8s-checks.ts';
import { clone, readYaml, readYamlAll, rootPath, type Doc } from './lib.ts';

const kustomization = readYaml('deploy/k8s/kustomization.yaml') as { resources: string[]; namespace: string };
const files: string[] = kustomization.resources.map((r) => `deploy/k8s/${r}`);
const docs: Doc[] = files.flatMap((f) => readYamlAll(f).map((d) => Object.assign(d, { __file: f })));
// cert-manager's kinds are not in kubernetes-models: checkCertManager checks their fields.
const CRD_GROUPS = ['cert-manager.io/'];
const builtin = docs.filter((d) => !CRD_GROUPS.some((g) => String(d.apiVersion).startsWith(g)));
const strip = (d: Doc) => {
  const { __file: _f, ...rest } = d;
  return rest;
};

/** kubernetes-models module for an apiVersion + kind: apps/v1 Deployment -> kubernetes-models/apps/v1/Deployment. */
function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function validateManifest(d: Doc): Promise<string | undefined> {
  const mod = (await import(modelModule(d.apiVersion, d.kind))) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[d.kind];
  if (!Model) return `${d.apiVersion} ${d.kind}: no model`;
  try {
    new Model(strip(d)).validate();
    return undefined;
  } catch (err) {
    return `${d.__file} ${d.kind}/${d.metadata?.name}: ${(err as Error).message}`;
  }
}

test('kustomization lists every manifest in deploy/k8s, and each exists', () => {
  for (const f of files) assert.ok(existsSync(rootPath(f)), `${f} missing`);
  const kinds = docs.map((d) => d.kind);
  for (const k of [
    'Namespace',
    'ConfigMap',
    'Secret',
    'Deployment',
    'Service',
    'HorizontalPodAutoscaler',
    'PodDisruptionBudget',
    'StatefulSet',
    'NetworkPolicy',
    'PersistentVolumeClaim',
    'Issuer',
    'Certificate',
  ])
    assert.ok(kinds.includes(k), `no ${k}`);
  for (const d of docs)
    if (d.kind !== 'Namespace') assert.equal(d.metadata?.namespace, kustomization.namespace, `${d.kind}/${d.metadata?.name} namespace`);
});

test('every manifest validates against the Kubernetes OpenAPI schema (kubernetes-models)', async () => {
  const errors = (await Promise.all(builtin.map(validateManifest))).filter(Boolean);
  assert.deepEqual(errors, []);
});

test('the schema check rejects an invalid manifest', async () => {
  const engine = clone(docs.find((d) => d.metadata?.name === 'icp-engine-vllm-0' && d.kind === 'Deployment'));
  engine.spec.template.spec.containers[0].ports[0].containerPort = 'eight-thousand';
  assert.match((await validateManifest(engine)) ?? '', /containerPort/);
  const router = clone(docs.find((d) => d.metadata?.name === 'icp-router' && d.kind === 'Deployment'));
  delete router.spec.selector;
  assert.match((await validateManifest(router)) ?? '', /selector/);
});

// Strict: an unknown field (a typo such as `periodSecond`) is an error. The package's TypeScript
// interfaces mirror the OpenAPI schema; object literals get TypeScript's excess-property check.
function typeName(kind: string) {
  return `I${kind}`;
}

function strictTypeErrors(manifests: Doc[]): string[] {
  const dir = mkdtempSync(join(rootPath('node_modules'), '.icp-k8s-strict-'));
  try {
    const lines = manifests.map((d, i) => {
      const mod = modelModule(d.apiVersion, d.kind);
      return `import type { ${typeName(d.kind)} as T${i} } from '${mod}';\nexport const m${i}: T${i} = ${JSON.stringify(strip(d))};`;
    });
    const file = join(dir, 'manifests.ts');
    writeFileSync(file, lines.join('\n'));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((diag) => {
      const where = diag.file && diag.start !== undefined ? diag.file.getLineAndCharacterOfPosition(diag.start) : undefined;
      const idx = where ? Math.floor(where.line / 2) : -1;
      const d = manifests[idx];
      return `${d ? `${d.__file} ${d.kind}/${d.metadata?.name}` : '?'}: ${ts.flattenDiagnosticMessageText(diag.messageText, ' ')}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('no manifest has a field the Kubernetes API does not know (strict)', () => {
  assert.deepEqual(strictTypeErrors(builtin), []);
});

test('the strict check rejects a misspelt field', () => {
  const engine = clone(docs.find((d) => d.metadata?.name === 'icp-engine-vllm-0' && d.kind === 'Deployment'));
  engine.spec.template.spec.containers[1].readinessProbe.periodSecond = 5;
  const errors = strictTypeErrors([engine]);
  assert.ok(
    errors.some((e) => e.includes('periodSecond')),
    JSON.stringify(errors),
  );
});

test('probes, resources, GPU limits, drain, HPA/PDB and network policy are as required', () => {
  assert.deepEqual(checkK8s(docs), []);
});

test('the checks fail when a required setting is removed', () => {
  const byName = (d: Doc[], kind: string, name: string) => d.find((x) => x.kind === kind && x.metadata?.name === name);
  const engineOf = (d: Doc[]) => byName(d, 'Deployment', 'icp-engine-vllm-0').spec.template.spec;
  const broken: [string, (d: Doc[]) => void, RegExp][] = [
    ['no GPU limit', (d) => delete engineOf(d).containers[0].resources.limits['nvidia.com/gpu'], /nvidia.com\/gpu/],
    ['short startup', (d) => (engineOf(d).containers[0].startupProbe.failureThreshold = 6), /startupProbe allows/],
    ['readiness not warm-up aware', (d) => (engineOf(d).containers[1].readinessProbe.httpGet.path = '/healthz'), /agent \/readyz/],
    ['liveness calls the engine', (d) => (engineOf(d).containers[1].livenessProbe.httpGet = { path: '/health', port: 8000 }), /liveness/],
    [
      'engine stops before the drain ends',
      (d) => (engineOf(d).containers[0].lifecycle.preStop.sleep.seconds = 10),
      /preStop keeps the engine up/,
    ],
    ['grace shorter than drain', (d) => (engineOf(d).terminationGracePeriodSeconds = 30), /terminationGracePeriodSeconds 30/],
    [
      'router grace too short',
      (d) => (byName(d, 'Deployment', 'icp-router').spec.template.spec.terminationGracePeriodSeconds = 10),
      /router: terminationGracePeriodSeconds/,
    ],
    [
      'no resources',
      (d) => delete byName(d, 'Deployment', 'icp-router').spec.template.spec.containers[0].resources,
      /no cpu\/memory requests/,
    ],
    [
      'no HPA',
      (d) =>
        d.splice(
          d.findIndex((x) => x.kind === 'HorizontalPodAutoscaler'),
          1,
        ),
      /HorizontalPodAutoscaler/,
    ],
    [
      'no router PDB',
      (d) =>
        d.splice(
          d.findIndex((x) => x.kind === 'PodDisruptionBudget' && x.metadata.name === 'icp-router'),
          1,
        ),
      /router: no PodDisruptionBudget/,
    ],
    [
      'agents open to all',
      (d) => byName(d, 'NetworkPolicy', 'icp-engine-ingress').spec.ingress[0].from.push({ namespaceSelector: {} }),
      /gRPC open to/,
    ],
    ['latest image', (d) => (engineOf(d).containers[1].image = 'icp:latest'), /not pinned/],
    ['secret committed', (d) => (byName(d, 'Secret', 'icp-hf-token').stringData.HF_TOKEN = 'hf_real'), /has a value committed/],
    [
      'admin token committed',
      (d) => (byName(d, 'Secret', 'icp-admin-token').stringData.token = 'x'),
      /icp-admin-token: token has a value committed/,
    ],
    [
      'engine surge',
      (d) => (byName(d, 'Deployment', 'icp-engine-vllm-1').spec.strategy = { type: 'RollingUpdate' }),
      /icp-engine-vllm-1: strategy is not Recreate/,
    ],
    ['two Pods, one identity', (d) => (byName(d, 'Deployment', 'icp-engine-vllm-0').spec.replicas = 2), /replicas 2, not 1/],
  ];
  for (const [what, mutate, expected] of broken) {
    const d = clone(docs);
    mutate(d);
    const problems = checkK8s(d);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});

// ---------- trust boundaries (issue 17, item 5) ----------

test('cert-manager: self-signed bootstrap Issuer, CA Certificate, CA Issuer, and certificates with known fields', () => {
  assert.deepEqual(checkCertManager(docs), []);
});

test('auth, mTLS mounted, NetworkPolicies, engine egress, Redis auth, state on a PVC, per-container secrets, vLLM media', () => {
  assert.deepEqual(checkK8sSecurity(docs), []);
});

test('the trust-boundary checks fail on a broken copy of each setting', () => {
  const byName = (d: Doc[], kind: string, name: string) => d.find((x) => x.kind === kind && x.metadata?.name === name);
  const pod = (d: Doc[], name: string) => byName(d, name === 'icp-redis' ? 'StatefulSet' : 'Deployment', name).spec.template.spec;
  const container = (d: Doc[], name: string, c: string) => pod(d, name).containers.find((x: Doc) => x.name === c);
  const config = (d: Doc[], edit: (c: Doc) => void) => {
    const cm = byName(d, 'ConfigMap', 'icp-config');
    const c = parseYaml(cm.data['config.yaml']);
    edit(c);
    cm.data['config.yaml'] = stringifyYaml(c);
  };
  const agentTemplate = (d: Doc[], from: string, to: string) => {
    const cm = byName(d, 'ConfigMap', 'icp-config');
    cm.data['agent.yaml.tmpl'] = cm.data['agent.yaml.tmpl'].replace(from, to);
  };
  const volume = (d: Doc[], name: string, v: string) => pod(d, name).volumes.find((x: Doc) => x.name === v);
  const policy = (d: Doc[], name: string) => byName(d, 'NetworkPolicy', name).spec;
  const drop = (d: Doc[], kind: string, name: string) => d.splice(d.indexOf(byName(d, kind, name)), 1);
  const broken: [string, (d: Doc[]) => void, RegExp][] = [
    ['auth off', (d) => config(d, (c) => (c.router.auth.mode = 'off')), /router.auth.mode is off/],
    ['limits store fails open', (d) => config(d, (c) => delete c.router.auth.onStoreError), /onStoreError is unset/],
    ['no admin token file', (d) => config(d, (c) => delete c.controlPlane.adminTokenFile), /adminTokenFile: not set/],
    ['no state file', (d) => config(d, (c) => delete c.controlPlane.stateFile), /stateFile: not set/],
    ['agent plaintext', (d) => agentTemplate(d, 'tls: {', 'tlsOff: {'), /agent.tls: not set/],
    ['agent without node token', (d) => agentTemplate(d, 'nodeTokenFile:', 'tokenFile:'), /nodeTokenFile: not set/],
    [
      'router gets the admin token',
      (d) =>
        volume(d, 'icp-router', 'secrets').projected.sources.push({
          secret: { name: 'icp-admin-token', items: [{ key: 'token', path: 'admin-token' }] },
        }),
      /icp-router\/router: can read Secret icp-admin-token:token/,
    ],
    [
      "agent gets the other agent's key",
      (d) => (volume(d, 'icp-engine-vllm-1', 'secrets').projected.sources[1].secret.name = 'icp-tls-vllm-0'),
      /icp-engine-vllm-1\/agent: can read Secret icp-tls-vllm-0:tls.key/,
    ],
    [
      'vLLM gets every secret',
      (d) => (container(d, 'icp-engine-vllm-0', 'vllm').envFrom = [{ secretRef: { name: 'icp-router-token' } }]),
      /vllm: can read Secret icp-router-token:\*/,
    ],
    [
      'secrets world-readable',
      (d) => delete volume(d, 'icp-router', 'secrets').projected.defaultMode,
      /volume secrets is world-readable \(defaultMode 644\)/,
    ],
    ['service user cannot read its secrets', (d) => delete pod(d, 'icp-router').securityContext.fsGroup, /readable by root only/],
    [
      'whole Secret mounted',
      (d) => delete volume(d, 'icp-control-plane', 'secrets').projected.sources[0].secret.items,
      /icp-admin-token:\*/,
    ],
    [
      'CA key mounted',
      (d) =>
        volume(d, 'icp-router', 'secrets').projected.sources.push({
          secret: { name: 'icp-ca', items: [{ key: 'tls.key', path: 'ca.key' }] },
        }),
      /mounts the CA key Secret icp-ca/,
    ],
    [
      'certificate not mounted',
      (d) => volume(d, 'icp-engine-vllm-0', 'secrets').projected.sources.pop(),
      /agent.tls.certFile \/etc\/icp\/secrets\/tls.crt is not mounted/,
    ],
    [
      'agent certificate with the wrong CN',
      (d) => (byName(d, 'Certificate', 'icp-agent-vllm-1').spec.commonName = 'vllm-0'),
      /CN is vllm-0, want vllm-1/,
    ],
    [
      'agent certificate without the checked name',
      (d) => (byName(d, 'Certificate', 'icp-agent-vllm-0').spec.dnsNames = ['vllm-0']),
      /dnsNames lack agents.icp.internal/,
    ],
    [
      'agent certificate server-only',
      (d) => (byName(d, 'Certificate', 'icp-agent-vllm-0').spec.usages = ['server auth']),
      /usages need server auth and client auth/,
    ],
    [
      'no router certificate',
      (d) => drop(d, 'Certificate', 'icp-router'),
      /icp-tls-router:tls.crt, which no cert-manager Certificate makes|no Certificate with CN router/,
    ],
    [
      'unsafe override',
      (d) => container(d, 'icp-router', 'router').env.push({ name: 'ICP_DANGEROUSLY_ALLOW_UNAUTHENTICATED_NETWORK', value: '1' }),
      /sets ICP_DANGEROUSLY/,
    ],
    [
      'token written in the manifest',
      (d) => container(d, 'icp-control-plane', 'control-plane').env.push({ name: 'ICP_ADMIN_TOKEN', value: 'x' }),
      /ICP_ADMIN_TOKEN written in the manifest/,
    ],
    [
      'state on an emptyDir',
      (d) => (volume(d, 'icp-control-plane', 'state').persistentVolumeClaim = undefined),
      /not on a PersistentVolumeClaim/,
    ],
    [
      'Redis without password',
      (d) => (container(d, 'icp-redis', 'redis').args = ['redis-server', '--appendonly', 'yes']),
      /no requirepass/,
    ],
    [
      'Redis password on the command line',
      (d) => (container(d, 'icp-redis', 'redis').args = ['redis-server --requirepass $(REDISCLI_AUTH)']),
      /on the command line/,
    ],
    [
      'router REDIS_URL without password',
      (d) => (container(d, 'icp-router', 'router').env.find((e: Doc) => e.name === 'REDIS_URL').value = 'redis://icp-redis:6379/0'),
      /REDIS_URL .* carries no password/,
    ],
    ['no default deny', (d) => drop(d, 'NetworkPolicy', 'icp-default-deny-ingress'), /no default-deny/],
    [
      'control plane unprotected',
      (d) => drop(d, 'NetworkPolicy', 'icp-control-plane-ingress'),
      /control plane: no NetworkPolicy selects it/,
    ],
    [
      'control plane open to every namespace',
      (d) => policy(d, 'icp-control-plane-ingress').ingress[0].from.push({ namespaceSelector: {} }),
      /control plane open to/,
    ],
    [
      'control plane open to an IP range',
      (d) => policy(d, 'icp-control-plane-ingress').ingress[0].from.push({ ipBlock: { cidr: '0.0.0.0/0' } }),
      /control plane open to/,
    ],
    ['agents unprotected', (d) => drop(d, 'NetworkPolicy', 'icp-engine-ingress'), /no ingress NetworkPolicy selects the agents/],
    ['no engine egress policy', (d) => drop(d, 'NetworkPolicy', 'icp-engine-egress'), /no egress NetworkPolicy/],
    [
      'metadata reachable',
      (d) => (policy(d, 'icp-engine-egress').egress[2].to[0].ipBlock.except = ['10.0.0.0/8']),
      /egress allows 169.254.169.254/,
    ],
    [
      'egress anywhere',
      (d) => policy(d, 'icp-engine-egress').egress.push({ ports: [{ protocol: 'TCP', port: 80 }] }),
      /egress allows 169.254.169.254/,
    ],
    [
      'vLLM fetches any media',
      (d) => (container(d, 'icp-engine-vllm-0', 'vllm').args = container(d, 'icp-engine-vllm-0', 'vllm').args.slice(0, -2)),
      /--allowed-media-domains not set/,
    ],
    [
      'vLLM follows redirects',
      (d) =>
        (container(d, 'icp-engine-vllm-1', 'vllm').env = container(d, 'icp-engine-vllm-1', 'vllm').env.filter(
          (e: Doc) => e.name !== 'VLLM_MEDIA_URL_ALLOW_REDIRECTS',
        )),
      /VLLM_MEDIA_URL_ALLOW_REDIRECTS/,
    ],
    [
      'engine Deployments drift',
      (d) => (container(d, 'icp-engine-vllm-1', 'vllm').resources.limits.memory = '64Gi'),
      /icp-engine-vllm-1: differs from icp-engine-vllm-0/,
    ],
    [
      'router certificate not a client one',
      (d) => (byName(d, 'Certificate', 'icp-router').spec.usages = ['server auth']),
      /icp-router: usages lack client auth/,
    ],
    ['agent without a node id', (d) => pod(d, 'icp-engine-vllm-0').initContainers[0].env.shift(), /icp-engine-vllm-0: no NODE_ID/],
    ['routers check the Pod IP', (d) => config(d, (c) => delete c.router.agentTls.serverName), /need agentTls.serverName/],
    [
      'vLLM reads files',
      (d) => container(d, 'icp-engine-vllm-0', 'vllm').args.push('--allowed-local-media-path=/'),
      /--allowed-local-media-path/,
    ],
    ['state PVC missing', (d) => drop(d, 'PersistentVolumeClaim', 'icp-control-plane-state'), /PVC icp-control-plane-state missing/],
    [
      'two control planes on one state file',
      (d) => (byName(d, 'Deployment', 'icp-control-plane').spec.replicas = 2),
      /more than one replica/,
    ],
    [
      'Redis password inline',
      (d) => (container(d, 'icp-redis', 'redis').env = [{ name: 'REDISCLI_AUTH', value: 'pw' }]),
      /REDISCLI_AUTH \(its password\) not from a Secret|REDISCLI_AUTH written in the manifest/,
    ],
    [
      'router uses another Redis password',
      (d) =>
        (container(d, 'icp-router', 'router').env.find((e: Doc) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef.name =
          'icp-router-token'),
      /its Redis password is not the Secret Redis uses/,
    ],
    [
      'REDIS_URL before its password variable',
      (d) => container(d, 'icp-router', 'router').env.reverse(),
      /REDIS_PASSWORD defined after REDIS_URL/,
    ],
    ['control plane every port', (d) => delete policy(d, 'icp-control-plane-ingress').ingress[0].ports, /opens every control-plane port/],
    ['engine egress every port', (d) => delete policy(d, 'icp-engine-egress').egress[1].ports, /an egress rule opens every port/],
  ];
  for (const [what, mutate, expected] of broken) {
    const d = clone(docs);
    mutate(d);
    const problems = checkK8sSecurity(d);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});

test('the cert-manager checks fail on broken resources', () => {
  const byName = (d: Doc[], kind: string, name: string) => d.find((x) => x.kind === kind && x.metadata?.name === name);
  const broken: [string, (d: Doc[]) => void, RegExp][] = [
    ['misspelt field', (d) => (byName(d, 'Certificate', 'icp-router').spec.dnsName = ['x']), /unknown field spec.dnsName/],
    ['unknown usage', (d) => byName(d, 'Certificate', 'icp-router').spec.usages.push('client-auth'), /unknown usage client-auth/],
    ['bad duration', (d) => (byName(d, 'Certificate', 'icp-router').spec.duration = '90d'), /duration 90d/],
    [
      'signed by the bootstrap issuer',
      (d) => (byName(d, 'Certificate', 'icp-router').spec.issuerRef.name = 'icp-selfsigned'),
      /not the CA Issuer/,
    ],
    ['no CA issuer', (d) => d.splice(d.indexOf(byName(d, 'Issuer', 'icp-ca')), 1), /no CA Issuer|is no Issuer here/],
    ['no bootstrap issuer', (d) => d.splice(d.indexOf(byName(d, 'Issuer', 'icp-selfsigned')), 1), /no self-signed bootstrap Issuer/],
  ];
  for (const [what, mutate, expected] of broken) {
    const d = clone(docs);
    mutate(d);
    const problems = checkCertManager(d);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});
