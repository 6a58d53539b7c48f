// Drives a BatchingEngine on the wall clock, one step at a time: the loop both simulators share.
// A virtual deadline keeps sub-millisecond steps averaging out right despite timer granularity,
// and setImmediate lets requests that arrive together join the same batch.
import type { BatchingEngine } from './vllm/batching.ts';

export interface StepHooks {
  /** Before each step is planned. */
  beforeStep?(): void;
  /** After a step is planned, with its duration in ms. */
  onStep?(durationMs: number): void;
}

export class StepLoop {
  private stepping = false;
  private stopped = false;
  private nextAt = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(
    private readonly engine: BatchingEngine,
    private readonly hooks: StepHooks = {},
  ) {}

  /** New work arrived: start stepping if idle. */
  kick(): void {
    if (this.stepping || this.stopped) return;
    this.stepping = true;
    this.timer = setImmediate(this.runStep);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
  }

  private readonly runStep = (): void => {
    this.timer = null;
    this.hooks.beforeStep?.();
    const d = this.stopped ? null : this.engine.beginStep();
    if (d === null) {
      this.stepping = false;
      return;
    }
    this.hooks.onStep?.(d);
    const now = performance.now();
    this.nextAt = Math.max(this.nextAt, now) + d;
    const wait = this.nextAt - now;
    const finish = () => {
      this.timer = null;
      this.engine.endStep();
      this.runStep();
    };
    this.timer = wait < 1 ? setImmediate(finish) : setTimeout(finish, wait);
  };
}
