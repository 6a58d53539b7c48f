// Starts one service as a child process and waits for its "listening" line on stdout
// (common/process.ts announceListening). Used by `npm start` and by the integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../common/paths.ts';

export { REPO_ROOT };

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  url: string;
  info: Record<string, unknown>;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  name: string;
  /** A TS entry file relative to the repo root (run through tsx unless `compiled`), and its arguments. */
  entry: string;
  args: string[];
  env?: Record<string, string>;
  /** A command the service runs under (e.g. `ip netns exec NAME` in the chaos suite's network fault). */
  prefix?: string[];
  timeoutMs?: number;
  /** Called with every stdout/stderr line that is not the listening line. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Run the compiled entry (`npm run build`: dist/<entry>.js) with plain node, as production does. */
  compiled?: boolean;
}

/** The compiled form of a source entry: cli/main.ts -> dist/cli/main.js. */
export function compiledEntry(entry: string): string {
  return `dist/${entry.replace(/\.ts$/, '.js')}`;
}

export function spawnService(opts: SpawnOptions): Promise<ServiceProcess> {
  const argv = opts.compiled
    ? [process.execPath, compiledEntry(opts.entry), ...opts.args]
    : [process.execPath, '--import', 'tsx', opts.entry, ...opts.args];
  const cmd = [...(opts.prefix ?? []), ...argv];
  const child = spawn(cmd[0]!, cmd.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const tail: string[] = [];
  const remember = (line: string, stream: 'stdout' | 'stderr') => {
    tail.push(line);
    if (tail.length > 30) tail.shift();
    opts.onLine?.(line, stream);
  };
  createInterface({ input: child.stderr! }).on('line', (l) => remember(l, 'stderr'));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.name} did not start within ${opts.timeoutMs ?? 60_000} ms; last output:\n${tail.join('\n')}`));
    }, opts.timeoutMs ?? 60_000);
    let started = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!started && line.startsWith('{"event":"listening"')) {
        started = true;
        clearTimeout(timer);
        const info = JSON.parse(line) as Record<string, unknown>;
        const proc: ServiceProcess = {
          name: opts.name,
          child,
          url: String(info.url),
          info,
          exited,
          kill: (signal = 'SIGKILL') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          },
          stop: async (graceMs = 10_000) => {
            if (child.exitCode !== null || child.signalCode !== null) return exited;
            child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
            const result = await exited;
            clearTimeout(t);
            return result;
          },
        };
        resolve(proc);
        return;
      }
      remember(line, 'stdout');
    });
    void exited.then((code) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`${opts.name} exited (${code}) before listening; last output:\n${tail.join('\n')}`));
      }
    });
  });
}
