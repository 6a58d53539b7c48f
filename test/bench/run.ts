// `npm run bench`: every benchmark, one after the other (they would disturb each other in
// parallel on a small machine). Each prints its table and writes bench-results/<name>.json.
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../../cli/spawn-service.ts';

const benches = [
  'test/bench/shadow.ts',
  'test/bench/idempotency.ts',
  'test/bench/routing.ts',
  'test/bench/agent.ts',
  'test/bench/embeddings.ts',
  'test/bench/scheduling.ts',
  'test/bench/capacity.ts',
  'test/bench/failover.ts',
  'test/bench/observability.ts',
  'test/bench/cache.ts',
  'test/bench/batch.ts',
  'test/bench/startup.ts',
];
const only = process.argv.slice(2);
let failed = 0;
for (const file of benches.filter((b) => only.length === 0 || only.some((o) => b.includes(o)))) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (r.status !== 0) failed += 1;
}
process.exit(failed ? 1 : 0);
