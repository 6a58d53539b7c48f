// Input hygiene (issue 17, eslint.config.js's local/no-plain-object-lookup): in the services, a
// string-keyed lookup on a plain object (`obj[key]`, `key in obj`) is refused, because a key such
// as `constructor` or `__proto__` finds Object.prototype. This proves the rule catches planted
// violations (and lets the safe forms through), that the real tree is clean, and that the list of
// files still waiting for their owners' fixes only names files that still need it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import { REPO_ROOT } from '../../../common/paths.ts';
import { own, setOwn } from '../../../common/own.ts';
import { PROTOTYPE_KEYS } from '../../fuzz/generators.ts';

const mod = (await import(pathToFileURL(join(REPO_ROOT, 'eslint.config.js')).href)) as {
  default: Linter.Config[];
  SERVICE_DIRS: string[];
  PLAIN_LOOKUP_PENDING: string[];
};
const RULE = 'local/no-plain-object-lookup';
/** The real config, with only this rule reporting (the others are npm run lint's business). */
const onlyThisRule = (c: Linter.Config): Linter.Config =>
  c.rules ? { ...c, rules: Object.fromEntries(Object.entries(c.rules).map(([k, v]) => [k, k === RULE ? v : 'off'])) } : c;
const eslint = new ESLint({ cwd: REPO_ROOT, overrideConfigFile: true, overrideConfig: mod.default.map(onlyThisRule) });

/** Lints `code` as if it were the content of an existing service file (the type-aware project knows it). */
async function findings(code: string, filePath = 'router/models/catalog.ts'): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(REPO_ROOT, filePath) });
  return r!.messages.map((m) => `${m.ruleId ?? 'parse'}:${m.line}`);
}

describe('own() and setOwn() (common/own.ts)', () => {
  it('see own properties only, whatever the key', () => {
    const m: Record<string, string> = { a: '1' };
    assert.equal(own(m, 'a'), '1');
    assert.equal(own(undefined, 'a'), undefined);
    assert.equal(own(process.env, 'PATH'), process.env.PATH);
    for (const k of PROTOTYPE_KEYS) {
      assert.equal(own(m, k), undefined, k);
      setOwn(m, k, `v-${k}`);
      assert.equal(own(m, k), `v-${k}`, k);
    }
    // `__proto__` became an ordinary own key: the prototype is untouched.
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
    assert.equal(Object.keys(m).length, 1 + PROTOTYPE_KEYS.length);
  });
});

describe('no plain-object lookup with string keys in the services', () => {
  const planted: [string, string][] = [
    ['read of a Record<string, V>', 'const m: Record<string, number> = {};\nexport const f = (k: string) => m[k];'],
    ['write to a Record<string, V>', 'const m: Record<string, number> = {};\nexport const f = (k: string) => {\n  m[k] = 1;\n};'],
    ['an index signature', 'export const f = (o: { [k: string]: string }, k: string) => o[k];'],
    [
      'node headers',
      "import type { IncomingHttpHeaders } from 'node:http';\nexport const f = (h: IncomingHttpHeaders, k: string) => h[k];",
    ],
    ['a template-literal key', 'const m: Record<string, number> = {};\nexport const f = (k: string) => m[`x:${k}`];'],
    ['`in` with a string key', 'export const f = (o: object, k: string) => k in o;'],
    ['an any-typed key', 'const m: Record<string, number> = {};\nexport const f = (k: any) => m[k];'],
  ];
  for (const [what, code] of planted)
    it(`refuses ${what}`, async () => {
      const found = await findings(code);
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0]!, new RegExp(`^${RULE}:`));
    });

  const safe: [string, string][] = [
    ['a Map', 'const m = new Map<string, number>();\nexport const f = (k: string) => m.get(k);'],
    [
      'own() and Object.hasOwn',
      "import { own } from '../../common/own.ts';\nconst m: Record<string, number> = {};\nexport const f = (k: string) => (Object.hasOwn(m, k) ? own(m, k) : 0);",
    ],
    ['a literal key', "const m: Record<string, number> = {};\nexport const f = () => m['a'] ?? m.b;"],
    [
      'a key of a closed union',
      "type Lane = 'critical' | 'standard';\nconst m: Record<Lane, number> = { critical: 1, standard: 2 };\nexport const f = (k: Lane) => m[k];",
    ],
    ['an array index', 'export const f = (xs: string[], i: number) => xs[i];'],
    ['`in` with a literal', "export const f = (o: object) => 'x' in o;"],
  ];
  for (const [what, code] of safe)
    it(`lets through ${what}`, async () => {
      assert.deepEqual(await findings(code), []);
    });

  it('is only on in the services', async () => {
    assert.deepEqual(await findings('const m: Record<string, number> = {};\nexport const f = (k: string) => m[k];', 'cli/main.ts'), []);
  });

  it('finds nothing in the real tree (router/, control-plane/, node-agent/, common/)', { timeout: 240_000 }, async () => {
    const results = await eslint.lintFiles(mod.SERVICE_DIRS.map((d) => `${d}/**/*.ts`));
    const hits = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId === RULE).map((m) => `${relative(REPO_ROOT, r.filePath)}:${m.line}`),
    );
    assert.ok(results.length > 100, `linted ${results.length} files`);
    assert.deepEqual(hits, []);
  });

  it('the files still waiting for their owners still need it (an entry that is clean must be deleted)', { timeout: 120_000 }, async () => {
    const forced = new ESLint({
      cwd: REPO_ROOT,
      overrideConfigFile: true,
      overrideConfig: [...mod.default.map(onlyThisRule).map((c) => (c.ignores && c.rules?.[RULE] ? { ...c, ignores: [] } : c))],
    });
    for (const f of mod.PLAIN_LOOKUP_PENDING) {
      const [r] = await forced.lintFiles([f]);
      assert.ok(
        r!.messages.some((m) => m.ruleId === RULE),
        `${f} is clean now: remove it from PLAIN_LOOKUP_PENDING in eslint.config.js`,
      );
    }
  });
});
