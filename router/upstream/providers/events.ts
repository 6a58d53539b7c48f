// Builders for the event stream every upstream yields, and the wrapper that turns a provider's
// async generator into an UpstreamDispatch once its first event has arrived.
import type { UpstreamDispatch, UpstreamEvent } from './types.ts';
import { ProviderError } from './types.ts';
import { errors } from '../../../common/errors.ts';

export const ev = {
  chunk: (chunkJson: string): UpstreamEvent => ({ event: 'chunkJson', chunkJson }),
  response: (responseJson: string): UpstreamEvent => ({ event: 'responseJson', responseJson }),
  usage: (promptTokens: number, completionTokens: number, cachedPromptTokens = 0): UpstreamEvent => ({
    event: 'usage',
    usage: { promptTokens, completionTokens, cachedPromptTokens, ttftSeconds: 0 },
  }),
  error: (message: string, kind: 'ENGINE_ERROR' | 'ENGINE_OVERLOADED' | 'TIMEOUT' = 'ENGINE_ERROR', httpStatus = 502): UpstreamEvent => ({
    event: 'error',
    error: { kind, message, httpStatus, errorJson: '', beforeFirstToken: false },
  }),
};

/**
 * Waits for the first event of `events` (errors before it are the caller's to handle: retry,
 * next provider); after that, a failure becomes a final error event, never a hang.
 */
export async function toDispatch(
  provider: string,
  backend: string,
  events: AsyncGenerator<UpstreamEvent>,
  cancel: () => void,
): Promise<UpstreamDispatch> {
  let first: IteratorResult<UpstreamEvent>;
  try {
    first = await events.next();
  } catch (err) {
    cancel();
    throw err;
  }
  if (first.done) {
    cancel();
    throw new ProviderError(
      provider,
      errors.upstream(`provider ${provider} ended the response without an answer`, 'provider_error'),
      'retryable',
    );
  }
  let finished = false;
  const rest: AsyncIterator<UpstreamEvent> = {
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        const r = await events.next();
        if (r.done) finished = true;
        return r;
      } catch (err) {
        finished = true;
        const e = err as Error;
        return {
          done: false,
          value: ev.error(e instanceof ProviderError ? e.apiError.message : `provider ${provider} broke the stream: ${e.message}`),
        };
      }
    },
  };
  return { backend, attempts: 1, first: first.value, rest, cancel };
}
