// CI check for the Dockerfile: hadolint is not packaged in the registries reachable here, so it is
// linted with dockerfile-utils (the linter of the VS Code Docker extension: syntax, instruction
// arguments, JSON forms) plus hadolint's rules that matter for this image, checked directly:
// pinned base (DL3006/DL3007), non-root final user (DL3002), exec-form ENTRYPOINT/CMD (DL3025),
// COPY not ADD (DL3020), no secrets in ENV/ARG, multi-stage with `npm ci --omit=dev`, a
// HEALTHCHECK, and the onnxruntime-node CUDA build argument.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { validate } from 'dockerfile-utils';
import { readText, rootPath } from './lib.ts';

interface Instr {
  keyword: string;
  args: string;
  line: number;
}

function instructions(text: string): Instr[] {
  const out: Instr[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? '';
    const start = i;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + (lines[++i] ?? '').trim();
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m?.[1]) out.push({ keyword: m[1].toUpperCase(), args: (m[2] ?? '').trim(), line: start + 1 });
  }
  return out;
}

export function checkDockerfile(text: string): string[] {
  const problems: string[] = [];
  for (const d of validate(text)) problems.push(`line ${d.range.start.line + 1}: ${d.message}`);
  const ins = instructions(text);
  const args = new Map<string, string>();
  for (const i of ins.filter((x) => x.keyword === 'ARG')) {
    const [name = '', value] = i.args.split('=');
    if (value !== undefined) args.set(name, value);
  }
  const froms = ins.filter((i) => i.keyword === 'FROM');
  if (froms.length < 2) problems.push('not multi-stage');
  const stages = new Set<string>();
  for (const f of froms) {
    const [imageRaw = '', , alias] = f.args.split(/\s+/);
    const image = imageRaw.replace(/^\$\{?([A-Z_]+)\}?$/, (_m, n: string) => args.get(n) ?? _m);
    if (!stages.has(image)) {
      const colon = image.lastIndexOf(':');
      const tag = colon > image.lastIndexOf('/') ? image.slice(colon + 1) : '';
      if (!tag || tag === 'latest' || !/\d/.test(tag))
        problems.push(`line ${f.line}: base image ${image} not pinned to a version (DL3006/DL3007)`);
    }
    if (alias) stages.add(alias);
  }
  // Final stage: the last USER must not be root (DL3002), per stage that can be a target.
  const stageBounds = froms.map((f, idx) => ({ from: f, end: froms[idx + 1]?.line ?? Infinity }));
  for (const s of stageBounds) {
    const users = ins.filter((i) => i.keyword === 'USER' && i.line > s.from.line && i.line < s.end);
    const last = users.at(-1);
    const inherits = stages.has(s.from.args.split(/\s+/)[0] ?? '');
    if (s === stageBounds.at(-1) || inherits) {
      if (last && /^(root|0)(:|$)/.test(last.args)) problems.push(`stage at line ${s.from.line}: last USER is root (DL3002)`);
      if (!last && !inherits) problems.push(`stage at line ${s.from.line}: no USER (runs as root)`);
    }
  }
  for (const k of ['ENTRYPOINT', 'CMD']) {
    const last = ins.filter((i) => i.keyword === k).at(-1);
    if (!last) problems.push(`no ${k}`);
    else {
      try {
        const v = JSON.parse(last.args) as unknown;
        if (!Array.isArray(v)) throw new Error();
        if (k === 'ENTRYPOINT' && v[0] !== 'node') problems.push('ENTRYPOINT does not start node directly (a shell would swallow SIGTERM)');
      } catch {
        problems.push(`line ${last.line}: ${k} is not exec (JSON) form (DL3025)`);
      }
    }
  }
  // Production runs compiled JavaScript with plain node: no loader, no .ts entry point.
  const entry = ins.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)?.args ?? '';
  if (/tsx|\.ts"/.test(entry)) problems.push('ENTRYPOINT runs TypeScript (tsx); production runs the compiled dist/ with plain node');
  if (!ins.some((i) => i.keyword === 'RUN' && /npm run build\b/.test(i.args))) problems.push('no `npm run build` stage');
  // The image's Node is the one the tests ran on: the exact version of the `node` devDependency.
  const pinned = (JSON.parse(readText('package.json')) as { devDependencies: Record<string, string> }).devDependencies['node'];
  const base = args.get('NODE_IMAGE') ?? '';
  if (!pinned || !base.startsWith(`node:${pinned}-`))
    problems.push(`base image ${base} is not node:${pinned}-* (package.json devDependencies.node)`);
  if (!ins.some((i) => i.keyword === 'HEALTHCHECK' && !/^NONE/i.test(i.args))) problems.push('no HEALTHCHECK');
  if (ins.some((i) => i.keyword === 'ADD')) problems.push('ADD used; use COPY (DL3020)');
  if (!ins.some((i) => i.keyword === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))) problems.push('no `npm ci --omit=dev`');
  if (!ins.some((i) => i.keyword === 'ARG' && /^ONNXRUNTIME_NODE_INSTALL(=|$)/.test(i.args)))
    problems.push('no ONNXRUNTIME_NODE_INSTALL build argument (CUDA build of onnxruntime-node)');
  for (const i of ins.filter((x) => x.keyword === 'ENV' || x.keyword === 'ARG')) {
    if (/(TOKEN|SECRET|PASSWORD|API_KEY|PRIVATE_KEY)\w*\s*=/i.test(i.args))
      problems.push(`line ${i.line}: secret-looking ${i.keyword} baked into the image`);
  }
  for (const i of ins.filter((x) => x.keyword === 'COPY' && !x.args.includes('--from='))) {
    const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1))
      if (!existsSync(rootPath(src))) problems.push(`line ${i.line}: COPY source ${src} does not exist`);
  }
  return problems;
}

const dockerfile = readText('Dockerfile');

test('Dockerfile lints clean and follows the image rules', () => {
  assert.deepEqual(checkDockerfile(dockerfile), []);
});

test('the Dockerfile checks fail on a broken Dockerfile', () => {
  const broken: [string, string, RegExp][] = [
    ['root', dockerfile.replace(/FROM app AS runtime\nUSER node/, 'FROM app AS runtime\nUSER root'), /last USER is root/],
    ['latest base', dockerfile.replace(/ARG NODE_IMAGE=\S+/, 'ARG NODE_IMAGE=node:latest'), /not pinned/],
    [
      'shell-form entrypoint',
      dockerfile.replace(/ENTRYPOINT \[.*\]/, 'ENTRYPOINT node --import tsx cli/main.ts'),
      /ENTRYPOINT is not exec/,
    ],
    ['shell wrapper', dockerfile.replace(/ENTRYPOINT \["node"/, 'ENTRYPOINT ["sh", "-c", "node"'), /does not start node directly/],
    ['baked token', dockerfile.replace('ENV NODE_ENV=production', 'ENV HF_TOKEN=hf_abc NODE_ENV=production'), /secret-looking/],
    ['dev deps', dockerfile.replace('npm ci --omit=dev', 'npm ci'), /omit=dev/],
    ['no healthcheck', dockerfile.replace(/^HEALTHCHECK .*$/m, ''), /no HEALTHCHECK/],
    ['bad instruction', dockerfile.replace('WORKDIR /app', 'WORKDIRR /app'), /line \d+: /],
    ['tsx entrypoint', dockerfile.replace(/ENTRYPOINT \[.*\]/, 'ENTRYPOINT ["node", "--import", "tsx", "cli/main.ts"]'), /runs TypeScript/],
    ['no build', dockerfile.replace('RUN npm run build', 'RUN true'), /npm run build/],
    ['another node', dockerfile.replace(/ARG NODE_IMAGE=\S+/, 'ARG NODE_IMAGE=node:20.20.2-bookworm-slim'), /is not node:24/],
  ];
  for (const [what, text, expected] of broken) {
    assert.notEqual(text, dockerfile, `${what}: mutation did not apply`);
    const problems = checkDockerfile(text);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected ${expected}, got ${JSON.stringify(problems)}`,
    );
  }
});

test('tsx is a development tool only: production dependencies do not include it', () => {
  const pkg = JSON.parse(readText('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  assert.equal(pkg.dependencies['tsx'], undefined);
  assert.ok(pkg.devDependencies['tsx']);
});

test('.dockerignore keeps secrets, git and local builds out of the build context', () => {
  const lines = readText('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const p of ['.git', 'node_modules', '.env', '**/*.env', 'bench-results']) assert.ok(lines.includes(p), `.dockerignore lacks ${p}`);
  // What the image COPYs must not be ignored.
  for (const p of ['cli', 'common', 'router', 'node-agent', 'control-plane', 'proto', 'models', 'config'])
    assert.ok(!lines.includes(p), `${p} is ignored but the image needs it`);
  assert.ok(lines.includes('!test/sim'), 'test/sim must stay in the context for the sim target');
});
