// The Grafana dashboard and the Prometheus alert rules use only metrics that exist (docs/metrics.md,
// itself checked against the registries by other tests); every alert links to its runbook entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { documentedMetrics, promqlMetricNames, readText, readYaml, rootPath, undocumentedMetrics, type Doc } from './lib.ts';

const documented = documentedMetrics(readText('docs/metrics.md'));
const dashboard = JSON.parse(readText('deploy/grafana/dashboards/icp-overview.json')) as Doc;
const rules = readYaml('deploy/prometheus/alerts.yml');

function dashboardExprs(d: Doc): string[] {
  const out: string[] = [];
  const walk = (panels: Doc[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}
const ruleExprs = (r: Doc): string[] => (r.groups ?? []).flatMap((g: Doc) => (g.rules ?? []).map((x: Doc) => String(x.expr)));

test('docs/metrics.md lists the router, agent and GPU metrics', () => {
  for (const n of ['router_requests_total', 'agent_ready', 'gpu_node_health_verdict']) assert.ok(documented.has(n), n);
});

test('PromQL name extraction finds metrics and skips functions, labels and keywords', () => {
  assert.deepEqual(
    promqlMetricNames(
      'histogram_quantile(0.95, sum by (le, model) (rate(router_time_to_first_token_seconds_bucket{lane="standard"}[5m]))) > 5',
    ),
    ['router_time_to_first_token_seconds_bucket'],
  );
  assert.deepEqual(promqlMetricNames('gpu_memory_used_bytes / gpu_memory_total_bytes').sort(), [
    'gpu_memory_total_bytes',
    'gpu_memory_used_bytes',
  ]);
  assert.deepEqual(promqlMetricNames('time() - gpu_last_poll_timestamp_seconds > 60'), ['gpu_last_poll_timestamp_seconds']);
});

test('every metric in the Grafana dashboard exists in docs/metrics.md', () => {
  const exprs = dashboardExprs(dashboard);
  assert.ok(exprs.length >= 10);
  const names = new Set(exprs.flatMap(promqlMetricNames));
  assert.deepEqual(undocumentedMetrics(names, documented), []);
});

test('every metric in the alert rules exists in docs/metrics.md', () => {
  const names = new Set(ruleExprs(rules).flatMap(promqlMetricNames));
  assert.ok(names.size >= 8);
  assert.deepEqual(undocumentedMetrics(names, documented), []);
});

test('a made-up metric name is caught', () => {
  const bad = structuredClone(dashboard);
  bad.panels[0].targets[0].expr = 'sum(rate(router_request_total[5m]))';
  const names = new Set(dashboardExprs(bad).flatMap(promqlMetricNames));
  assert.deepEqual(undocumentedMetrics(names, documented), ['router_request_total']);
  assert.deepEqual(undocumentedMetrics(['router_tokens_total_bucket'], documented), ['router_tokens_total_bucket']);
});

test('every alert has a duration, a severity and a runbook entry in docs/operations.md', () => {
  const ops = readText('docs/operations.md');
  const anchors = new Set(
    ops
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .map((l) =>
        l
          .replace(/^#+\s*/, '')
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
  );
  for (const g of rules.groups) {
    for (const r of g.rules) {
      assert.ok(r.alert && r.expr && r.for, `rule ${JSON.stringify(r)}`);
      assert.ok(['page', 'warn'].includes(r.labels?.severity), `${r.alert}: severity`);
      const anchor = String(r.annotations?.runbook ?? '').split('#')[1] ?? '';
      assert.ok(anchors.has(anchor), `${r.alert}: runbook anchor #${anchor} not a heading in docs/operations.md`);
    }
  }
});

test('Prometheus loads the rules file compose mounts; Grafana provisions the dashboard folder compose mounts', () => {
  const prom = readYaml('deploy/prometheus/prometheus.yml');
  assert.deepEqual(prom.rule_files, ['/etc/prometheus/alerts.yml']);
  const compose = readYaml('docker-compose.gpu.yml');
  assert.ok(compose.services.prometheus.volumes.some((v: string) => v === './deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'));
  const targets = prom.scrape_configs.flatMap((s: Doc) => s.static_configs.flatMap((c: Doc) => c.targets));
  for (const t of targets) assert.ok(compose.services[t.split(':')[0]], `scrape target ${t} is not a compose service`);
  const prov = readYaml('deploy/grafana/provisioning/dashboards/icp.yaml');
  assert.equal(prov.providers[0].options.path, '/var/lib/grafana/dashboards');
  const ds = readYaml('deploy/grafana/provisioning/datasources/prometheus.yaml');
  assert.ok(dashboardExprs(dashboard).length > 0);
  for (const p of dashboard.panels) assert.equal(p.datasource.uid, ds.datasources[0].uid, `panel ${p.title}: datasource`);
});

// promtool parses PromQL and the rule schema for real. CI installs Debian's prometheus package
// (.ci/run); a developer machine without it gets the structural checks above only, and says so.
const promtool = spawnSync('promtool', ['--version']).status === 0;
test(
  'the alert rules pass `promtool check rules`, and a broken rule does not',
  { skip: promtool ? false : 'promtool not installed (CI installs it: .ci/run)' },
  () => {
    const ok = spawnSync('promtool', ['check', 'rules', rootPath('deploy/prometheus/alerts.yml')], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const dir = mkdtempSync(join(tmpdir(), 'icp-rules-'));
    try {
      const bad = structuredClone(rules);
      bad.groups[0].rules[0].expr = 'sum(rate(router_requests_total[5m]) by';
      writeFileSync(join(dir, 'bad.yml'), stringify(bad));
      const res = spawnSync('promtool', ['check', 'rules', join(dir, 'bad.yml')], { encoding: 'utf8' });
      assert.notEqual(res.status, 0, 'promtool accepted a rule with broken PromQL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
