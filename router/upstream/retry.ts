// Retries before the first byte reached the client: exponential backoff with full jitter
// (sleep = random(0, min(cap, base * 2^attempt))), capped attempts and the request's deadline.
// A provider's 429/503 Retry-After pauses that provider for every request in this router
// (ProviderPauses), instead of each request hammering it on its own schedule.
export interface RetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest a request waits out a provider's pause when that provider is its last option. */
  maxPauseWaitMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 2_000, maxPauseWaitMs: 5_000 };

/** Full-jitter delay before retry number `attempt` (1 = the first retry). */
export function backoffMs(
  attempt: number,
  o: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

export class ProviderPauses {
  private readonly until = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  pause(provider: string, ms: number): void {
    const t = this.now() + ms;
    // Never shorten a pause another request already learned about.
    if ((this.until.get(provider) ?? 0) < t) this.until.set(provider, t);
  }

  /** Milliseconds left of the provider's pause (0 when it may be called). */
  remainingMs(provider: string): number {
    const t = this.until.get(provider);
    if (t === undefined) return 0;
    const left = t - this.now();
    if (left <= 0) {
      this.until.delete(provider);
      return 0;
    }
    return left;
  }
}

/** Sleeps `ms`, ending early (rejecting) when `signal` aborts. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
