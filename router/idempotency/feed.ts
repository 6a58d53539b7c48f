// The frames of one running generation, in order, readable by any number of requests in this
// process while it is still being written: the owner appends, joiners follow.

/** One step of a recorded generation as it happens. */
export type LiveFrame =
  /** The answer starts (stream: SSE headers were sent). */
  | { t: 'h'; stream: boolean; status: number; headers: Record<string, string> }
  /** One SSE `data:` payload (a chunk). */
  | { t: 'd'; d: string }
  /** The JSON body of a non-streaming answer. */
  | { t: 'j'; body: string }
  /** Finished: the complete answer is recorded. */
  | { t: 'x' }
  /** Failed: the OpenAI error body and status (the key is released; nothing is stored). */
  | { t: 'e'; status: number; body: string }
  /** The owner stopped renewing its lease (crashed); a repeat may take the key over. */
  | { t: 'lost' };

export const isTerminal = (f: LiveFrame) => f.t === 'x' || f.t === 'e' || f.t === 'lost';

export class Feed {
  readonly frames: LiveFrame[] = [];
  private waiters = new Set<() => void>();

  get ended(): boolean {
    const last = this.frames.at(-1);
    return last !== undefined && isTerminal(last);
  }

  push(f: LiveFrame): void {
    if (this.ended) return;
    this.frames.push(f);
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Frames from `from` on, waiting for new ones until a terminal frame (or `signal`). */
  async *read(signal?: AbortSignal, from = 0): AsyncGenerator<LiveFrame> {
    let i = from;
    for (;;) {
      while (i < this.frames.length) yield this.frames[i++]!;
      if (this.ended || signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          this.waiters.delete(wake);
          resolve();
        };
        this.waiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }
}
