// Main-thread side of one inference worker: start it, send it batches of texts, await their outputs.
import { Worker } from 'node:worker_threads';
import type { FromWorker, RunInput, RunOutput, ToWorker, WorkerInit } from './worker-protocol.ts';

export interface WorkerReady {
  provider: 'cpu' | 'cuda';
  fallbackReason?: string;
  output: string;
  inputNames: string[];
  outputNames: string[];
}

interface Pending {
  resolve(v: RunOutput): void;
  reject(e: Error): void;
}

// The worker entry is TypeScript. Node 20 does not apply `--import tsx` to worker threads, so
// when this module itself runs from .ts source the worker starts through a bootstrap that
// registers tsx's loader first.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './inference-worker.ts' : './inference-worker.js', import.meta.url);

function spawnWorker(init: WorkerInit): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_URL, { workerData: init });
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(code, { eval: true, workerData: init });
}

export class InferenceWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: WorkerReady,
  ) {
    worker.on('message', (m: FromWorker) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'result') {
        const { type: _t, id: _i, ...out } = m;
        p.resolve(out);
      } else p.reject(new Error(m.message));
    });
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new Error(`inference worker exited (code ${code})`)));
  }

  static start(init: WorkerInit): Promise<InferenceWorker> {
    const worker = spawnWorker(init);
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          cleanup();
          const { type: _t, ...info } = m;
          resolve(new InferenceWorker(worker, info));
        } else if (m.type === 'init-error') {
          cleanup();
          void worker.terminate();
          reject(new Error(m.message));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`inference worker exited during start (code ${code})`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  get alive(): boolean {
    return this.dead === null;
  }

  run(input: RunInput): Promise<RunOutput> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const msg: ToWorker = { type: 'run', id, input };
    const transfer: ArrayBuffer[] = [];
    if (input.truncate) transfer.push(input.truncate.buffer as ArrayBuffer);
    if (input.queryIndex) transfer.push(input.queryIndex.buffer as ArrayBuffer);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.dead) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
