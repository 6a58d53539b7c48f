// Service boundaries (eslint.config.js's no-restricted-imports blocks): router, node-agent and
// control-plane share only common/ and proto/. The blocks are taken from the real config and run
// without the type-aware rules, so the whole tree lints in a few seconds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { REPO_ROOT } from '../../../common/paths.ts';

// Loaded by URL: the config is plain JavaScript without types.
const config = ((await import(pathToFileURL(join(REPO_ROOT, 'eslint.config.js')).href)) as { default: Linter.Config[] }).default;
const blocks = config.filter((c) => c.rules?.['no-restricted-imports']);
const eslint = new ESLint({
  cwd: REPO_ROOT,
  overrideConfigFile: true,
  // proto/ holds generated types (ignored) and .proto files today: nothing to lint is fine.
  errorOnUnmatchedPattern: false,
  overrideConfig: [{ ignores: ['proto/generated/**'] }, { files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...blocks],
});

async function violations(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('service boundaries', () => {
  it('has a block per service, common/ and proto/', () => {
    assert.deepEqual(blocks.flatMap((b) => b.files).sort(), [
      'common/**/*.ts',
      'control-plane/**/*.ts',
      'node-agent/**/*.ts',
      'proto/**/*.ts',
      'router/**/*.ts',
    ]);
  });

  const forbidden: [string, string][] = [
    ['router/tenancy/x.ts', "import { narrow } from '../../control-plane/tenants/policy.ts';"],
    ['router/main.ts', "import type { X } from '../node-agent/x.ts';"],
    ['router/nodes/x.ts', "export { y } from '../../cli/spawn-service.ts';"],
    ['node-agent/engines/x.ts', "import { NodeConnection } from '../../router/nodes/node-connection.ts';"],
    ['control-plane/capacity/x.ts', "import { parseSamples } from '../../node-agent/engines/vllm-metrics.ts';"],
    ['control-plane/api/x.ts', "import { freePort } from '../../test/helpers/ports.ts';"],
    ['common/x.ts', "import { budgetsConfigSchema } from '../router/accounting/budgets.ts';"],
    ['proto/x.ts', "import { x } from '../control-plane/x.ts';"],
  ];
  for (const [file, code] of forbidden) {
    it(`refuses in ${file}: ${code}`, async () => {
      const found = await violations(file, code);
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0]!, /^no-restricted-imports: .*services share only common\/ and proto\//);
    });
  }

  const allowed: [string, string][] = [
    ['router/tenancy/x.ts', "import { narrow } from '../../common/policy.ts';\nimport { SnapshotWatch } from '../nodes/membership.ts';"],
    ['control-plane/api/x.ts', "import type { NodeStatus__Output } from '../../proto/generated/x.ts';\nimport { z } from 'zod';"],
    ['cli/x.ts', "import { startRouter } from '../router/main.ts';\nimport { startAgent } from '../node-agent/main.ts';"],
    ['test/x.ts', "import { KeyDirectory } from '../router/tenancy/key-directory.ts';"],
  ];
  for (const [file, code] of allowed) {
    it(`allows in ${file}`, async () => {
      assert.deepEqual(await violations(file, code), []);
    });
  }

  it('holds in the real tree', async () => {
    const results = await eslint.lintFiles(['router', 'node-agent', 'control-plane', 'common', 'proto']);
    assert.ok(results.length > 100, `linted ${results.length} files`);
    const found = results.flatMap((r) => r.messages.map((m) => `${relative(REPO_ROOT, r.filePath)}:${m.line} ${m.message}`));
    assert.deepEqual(found, []);
  });
});
