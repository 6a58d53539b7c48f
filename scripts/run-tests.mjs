#!/usr/bin/env node
// Runs every *.test.ts under test/ with node's own test runner (tsx as the loader), on the Node
// that package.json's engines names: npm scripts find the pinned `node` devDependency
// (node_modules/.bin/node) first on PATH, so `npm test` runs on it whatever node ran npm.
// The file list is built here (with a filter) rather than left to --test's globs.
// Usage: node scripts/run-tests.mjs [substring ...]  (only files whose path contains one of them)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const engines = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).engines.node;
const wantMajor = Number(/\d+/.exec(engines)[0]);
if (Number(process.versions.node.split('.')[0]) < wantMajor) {
  console.error(
    `tests need Node ${engines} (package.json engines); this is ${process.version}. Run them through npm (npm test), which puts the pinned node_modules/.bin/node first.`,
  );
  process.exit(1);
}

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('test', [])
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const reporter = process.env.CI ? ['--test-reporter=spec'] : [];
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...reporter, ...files], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
