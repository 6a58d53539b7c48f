// Test helper: a private state file for the fake nvidia-smi, switchable mid-test.
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export type FakeNvidiaSmiFault =
  null | 'none' | 'ecc_uncorrected' | 'thermal_slowdown' | 'sw_thermal_slowdown' | 'hang' | 'fail' | 'gpu_missing';

export interface FakeNvidiaSmi {
  /** Absolute path of the executable (pass as GpuMonitorOptions.nvidiaSmiPath). */
  path: string;
  /** Environment the executable must run with (FAKE_NVIDIA_SMI_STATE). */
  env: Record<string, string>;
  setFault(f: FakeNvidiaSmiFault): void;
  /** A file name under test/fixtures/nvidia-smi/xml or csv. */
  setFixture(name: string): void;
  cleanup(): void;
}

export const FAKE_NVIDIA_SMI_PATH = join(dirname(fileURLToPath(import.meta.url)), 'fake-nvidia-smi');

export function createFakeNvidiaSmi(opts: { fixture?: string; fault?: FakeNvidiaSmiFault } = {}): FakeNvidiaSmi {
  const dir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-'));
  const stateFile = join(dir, 'state.json');
  const state = { fixture: opts.fixture ?? 'tesla-p100-pcie-16gb-driver510.47.03.xml', fault: opts.fault ?? (null as FakeNvidiaSmiFault) };
  // Write-then-rename so the fake never reads a half-written file.
  const write = (): void => {
    const tmp = `${stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ ...state, fault: state.fault === 'none' ? null : state.fault }));
    renameSync(tmp, stateFile);
  };
  write();
  // The monitor passes this env to execa; setting it on process.env as well lets a fake on
  // PATH (for code that does not take an env) see the same state.
  return {
    path: FAKE_NVIDIA_SMI_PATH,
    env: { FAKE_NVIDIA_SMI_STATE: stateFile },
    setFault(f) {
      state.fault = f;
      write();
    },
    setFixture(name) {
      state.fixture = name;
      write();
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
