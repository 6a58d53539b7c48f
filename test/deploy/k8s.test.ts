// CI checks for deploy/k8s: every manifest validates against the Kubernetes OpenAPI schema
// (npm `kubernetes-models`, generated from it; offline), unknown fields are rejected (TypeScript
// excess-property check against the same package's types, like kubeconform -strict), and the
// probes, resources and drain settings are what issue 10 asks for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { checkK8s } from './k8s-checks.ts';
import { clone, readYaml, readYamlAll, rootPath, type Doc } from './lib.ts';

const kustomization = readYaml('deploy/k8s/kustomization.yaml') as { resources: string[]; namespace: string };
const files: string[] = kustomization.resources.map((r) => `deploy/k8s/${r}`);
const docs: Doc[] = files.flatMap((f) => readYamlAll(f).map((d) => Object.assign(d, { __file: f })));
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
  ])
    assert.ok(kinds.includes(k), `no ${k}`);
  for (const d of docs)
    if (d.kind !== 'Namespace') assert.equal(d.metadata?.namespace, kustomization.namespace, `${d.kind}/${d.metadata?.name} namespace`);
});

test('every manifest validates against the Kubernetes OpenAPI schema (kubernetes-models)', async () => {
  const errors = (await Promise.all(docs.map(validateManifest))).filter(Boolean);
  assert.deepEqual(errors, []);
});

test('the schema check rejects an invalid manifest', async () => {
  const engine = clone(docs.find((d) => d.metadata?.name === 'icp-engine-vllm' && d.kind === 'Deployment'));
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
  assert.deepEqual(strictTypeErrors(docs), []);
});

test('the strict check rejects a misspelt field', () => {
  const engine = clone(docs.find((d) => d.metadata?.name === 'icp-engine-vllm' && d.kind === 'Deployment'));
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
  const engineOf = (d: Doc[]) => byName(d, 'Deployment', 'icp-engine-vllm').spec.template.spec;
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
    ['secret committed', (d) => (byName(d, 'Secret', 'icp-secrets').stringData.HF_TOKEN = 'hf_real'), /has a value committed/],
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
