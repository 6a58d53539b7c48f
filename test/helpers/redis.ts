// Starts a real redis-server (Debian's package; .ci/run installs it) on a random loopback port,
// with no persistence, for tests that need shared state across processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { freePort } from './ports.ts';

export interface RedisProcess {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
  /** Restarts on the same port (after a kill), for recovery tests. */
  restart(): Promise<void>;
}

function launch(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 10_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  const r: RedisProcess = {
    url: `redis://127.0.0.1:${port}`,
    port,
    child: await launch(port),
    async stop() {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        const exited = new Promise((res) => r.child.once('exit', res));
        r.child.kill('SIGKILL');
        await exited;
      }
    },
    async restart() {
      await r.stop();
      r.child = await launch(port);
    },
  };
  return r;
}
