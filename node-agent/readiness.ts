// Readiness = engine healthy AND the model answered a small warm-up generation (a loaded but cold
// engine compiles kernels and captures graphs on its first requests) AND no GPU is unhealthy.
// An engine that goes unhealthy must warm up again when it comes back (it may have restarted).
import { EventEmitter } from 'node:events';
import type { Operation } from '../common/contracts.ts';
import type { EngineAdapter, EngineModel } from './engines/engine.ts';
import type { EngineWatcher } from './engine-watcher.ts';
import type { Logger } from '../common/logger.ts';

export interface WarmupConfig {
  enabled: boolean;
  prompt: string;
  maxTokens: number;
  timeoutMs: number;
}

export class Readiness extends EventEmitter {
  ready = false;
  reason = 'starting';
  models: EngineModel[] = [];
  private warmedUp = false;
  private warming = false;
  private gpuUnhealthy = false;

  constructor(
    private readonly engine: EngineAdapter,
    private readonly watcher: EngineWatcher,
    private readonly warmup: WarmupConfig,
    private readonly configuredModels: string[] | undefined,
    private readonly logger: Logger,
  ) {
    super();
    watcher.on('change', () => this.evaluate());
    watcher.on('unhealthy', () => {
      this.warmedUp = false;
    });
  }

  setGpuUnhealthy(unhealthy: boolean): void {
    if (unhealthy === this.gpuUnhealthy) return;
    this.gpuUnhealthy = unhealthy;
    this.evaluate();
  }

  evaluate(): void {
    if (!this.watcher.healthy) return this.set(false, this.watcher.lastScrapeAt === 0 ? 'starting' : 'engine_unhealthy');
    if (this.gpuUnhealthy) return this.set(false, 'gpu_unhealthy');
    if (!this.warmedUp) {
      this.set(false, this.warming ? 'warming_up' : this.reason === 'warmup_failed' ? 'warmup_failed' : 'warming_up');
      if (!this.warming) void this.runWarmup();
      return;
    }
    this.set(true, '');
  }

  private async runWarmup(): Promise<void> {
    this.warming = true;
    const started = Date.now();
    try {
      this.models = await this.discoverModels();
      if (this.models.length === 0) throw new Error('engine serves no model');
      if (this.warmup.enabled) {
        const model = this.models[0]!.name;
        const body = { model, messages: [{ role: 'user', content: this.warmup.prompt }], max_tokens: this.warmup.maxTokens, stream: false };
        const op: Operation = 'CHAT_COMPLETIONS';
        for await (const _ of this.engine.generate(op, body, AbortSignal.timeout(this.warmup.timeoutMs))) {
          // drain the answer; success is reaching the end without an error
        }
      }
      this.warmedUp = true;
      this.logger.info({ ms: Date.now() - started, models: this.models.map((m) => m.name) }, 'warm-up succeeded');
    } catch (err) {
      this.reason = 'warmup_failed';
      this.logger.warn({ err: (err as Error).message }, 'warm-up failed; retrying on the next engine check');
    } finally {
      this.warming = false;
      this.evaluate();
    }
  }

  private async discoverModels(): Promise<EngineModel[]> {
    const served = await this.engine.models(AbortSignal.timeout(5_000)).catch(() => [] as EngineModel[]);
    if (!this.configuredModels) return served;
    return this.configuredModels.map((name) => served.find((m) => m.name === name) ?? { name, maxContext: 0 });
  }

  private set(ready: boolean, reason: string): void {
    if (ready === this.ready && reason === this.reason) return;
    this.ready = ready;
    this.reason = reason;
    this.emit('change');
  }
}
