// Defaults are written once, on the fields: a section left out must parse exactly like the same
// section given as `{}`. If a section carried its own default object (the old `.default({...})`
// beside per-field defaults) and the two disagreed, one of these comparisons would differ.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { z } from 'zod';
import { configSchema, parseConfig } from '../../../cli/config.ts';
import { agentSchema } from '../../../node-agent/config.ts';
import { HealthThresholdsSchema } from '../../../node-agent/gpu/health-policy.ts';
import { DEFAULT_ADMISSION } from '../../../router/admission/controller.ts';
import { batchConfigSchema } from '../../../router/batch/config.ts';
import { cacheConfigSchema } from '../../../router/cache/config.ts';
import { fallbackConfigSchema } from '../../../router/upstream/fallback-config.ts';

type Path = string[];
interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}
const defOf = (s: z.ZodType) => (s as unknown as { def: Def }).def;

/** Paths of the object sections that have a default (`.default`/`.prefault`), descending into them. Optional sections (absent = off) are left out. */
function defaultedSections(schema: z.ZodType, path: Path = []): Path[] {
  let s = schema;
  let defaulted = false;
  for (;;) {
    const d = defOf(s);
    if (d.type === 'default' || d.type === 'prefault') defaulted = true;
    else if (d.type !== 'pipe' && d.type !== 'readonly') break;
    s = d.innerType!;
  }
  const d = defOf(s);
  if (d.type !== 'object' || (path.length > 0 && !defaulted)) return [];
  const own = path.length ? [path] : [];
  return [...own, ...Object.entries(d.shape!).flatMap(([k, v]) => defaultedSections(v, [...path, k]))];
}

function withEmptyAt(base: Record<string, unknown>, path: Path): Record<string, unknown> {
  const root = structuredClone(base);
  let at = root;
  for (const k of path) at = (at[k] ??= {}) as Record<string, unknown>;
  return root;
}

/** Compares each defaulted section left out vs given as `{}`; returns the sections checked and those `{}` is not valid for (a required field: their default names it). */
function assertSectionsAgree(name: string, schema: z.ZodType, base: Record<string, unknown> = {}) {
  const expected = schema.parse(base);
  const sections = defaultedSections(schema);
  assert.ok(sections.length > 0, `${name}: no defaulted sections found (the walker no longer understands the schema)`);
  const needFields: string[] = [];
  for (const path of sections) {
    const parsed = schema.safeParse(withEmptyAt(base, path));
    if (!parsed.success) {
      needFields.push(path.join('.'));
      continue;
    }
    assert.deepEqual(parsed.data, expected, `${name}: ${path.join('.')} left out vs given as {}`);
  }
  return { sections: sections.map((p) => p.join('.')), needFields };
}

describe('config defaults are written once', () => {
  it('every section of the file parses the same left out or as {}', () => {
    const { sections, needFields } = assertSectionsAgree('config', configSchema);
    // Only the listen addresses have a field without a default (the port): their default is `{ port }`.
    assert.deepEqual(needFields, ['controlPlane.listen', 'router.listen']);
    // The walker reached the nested sections (a guard that the comparisons above ran at all).
    for (const p of [
      'router',
      'router.admission.lanes.critical',
      'router.fallback.breaker',
      'router.batch.webhook',
      'router.idempotency',
      'router.budgets',
      'router.auth',
      'controlPlane.capacity.store',
      'controlPlane.shadow.store',
      'logging',
      'telemetry',
    ]) {
      assert.ok(sections.includes(p), `section ${p} checked`);
    }
  });

  it('sections inside an agent entry and inside optional features agree too', () => {
    assertSectionsAgree('agent', agentSchema, { id: 'a', listen: { port: 1 }, engine: { url: 'http://127.0.0.1:1' } });
    assertSectionsAgree('cache', cacheConfigSchema);
    assertSectionsAgree('batch', batchConfigSchema);
    assertSectionsAgree('fallback', fallbackConfigSchema);
  });

  it('the documented defaults hold', () => {
    const c = parseConfig({});
    assert.deepEqual(c.router.listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(c.controlPlane.listen, { host: '127.0.0.1', port: 8081 });
    assert.deepEqual(c.router.admission.lanes, DEFAULT_ADMISSION.lanes);
    assert.deepEqual(c.router.auth, {
      mode: 'off',
      onStoreError: 'open',
      commandTimeoutMs: 1_000,
      leaseTtlMs: 30_000,
      defaultMaxTokens: 256,
    });
    assert.deepEqual(c.router.lanes, { keys: {}, tenants: {}, defaultMaxLane: 'standard' });
    assert.deepEqual(c.router.scheduling.affinity, { yieldFactor: 1, yieldSlackSeconds: 0.5 });
    assert.deepEqual(c.controlPlane.capacity.store, { kind: 'file', path: 'data/capacity', key: 'icp:capacity:history' });
    assert.deepEqual(c.controlPlane.shadow, { maxRecords: 50_000, store: { path: 'data/shadow' } });
    assert.deepEqual(c.logging, { level: 'info', logContent: false });
    assert.deepEqual(c.telemetry, { sampleRatio: 1 });
    // Features whose use sites used to parse `{}` themselves now arrive filled in.
    assert.equal(c.router.batch.enabled, true);
    assert.equal(c.router.idempotency.enabled, true);
    assert.deepEqual(c.router.fallback.chains, {});
    const agent = agentSchema.parse({ id: 'a', listen: { port: 1 }, engine: { url: 'http://127.0.0.1:1' } });
    assert.deepEqual(agent.warmup, { enabled: true, prompt: 'Hello', maxTokens: 1, timeoutMs: 60_000 });
    assert.deepEqual(agent.gpu, {
      enabled: 'auto',
      nvidiaSmiPath: 'nvidia-smi',
      queryIntervalMs: 5_000,
      xmlIntervalMs: 30_000,
      timeoutMs: 10_000,
      failuresBeforeUnhealthy: 3,
      kernelLog: false,
      thresholds: HealthThresholdsSchema.parse({}),
    });
  });

  it('a partly given section keeps the other fields at their defaults', () => {
    const c = parseConfig({
      router: { admission: { lanes: { critical: { maxQueue: 7 } } } },
      controlPlane: { capacity: { store: { kind: 'redis' } } },
    });
    assert.deepEqual(c.router.admission.lanes.critical, { ...DEFAULT_ADMISSION.lanes.critical, maxQueue: 7 });
    assert.deepEqual(c.router.admission.lanes.standard, DEFAULT_ADMISSION.lanes.standard);
    assert.deepEqual(c.controlPlane.capacity.store, { kind: 'redis', path: 'data/capacity', key: 'icp:capacity:history' });
  });
});
