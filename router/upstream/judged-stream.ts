// A breaker permit held until the upstream's answer is over, not just its first byte: a stream
// that breaks after its first token (a provider's dropped connection or `error` event, a node's
// mid-stream error) counts as a failure, and a node's slow first token is judged from the
// engine-side TTFT its final usage event reports, not from router-side timing.
import type { Permit } from './circuit-breaker.ts';
import type { UpstreamDispatch, UpstreamEvent } from './providers/types.ts';

export interface JudgeOptions {
  /** Called with the final usage event: true when the first token was too slow (a brownout). */
  slow(usage: NonNullable<UpstreamEvent['usage']>): boolean;
}

/**
 * Wraps `d` so that `permit` is judged exactly once: success at the final usage event (unless
 * `slow`), failure at an error event, a thrown iterator or an end without a final event; a
 * cancel before the end (the client went away) releases it unjudged.
 */
export function judgeAtEnd<D extends UpstreamDispatch>(d: D, permit: Permit, o: JudgeOptions): D {
  let judged = false;
  const judge = (ok: boolean | undefined) => {
    if (judged) return;
    judged = true;
    if (ok === undefined) permit.release();
    else if (ok) permit.success();
    else permit.failure();
  };
  const see = (ev: UpstreamEvent) => {
    if (ev.event === 'error') judge(false);
    else if (ev.event === 'usage' && ev.usage) judge(!o.slow(ev.usage));
  };
  see(d.first);
  const inner = d.rest;
  const rest: AsyncIterator<UpstreamEvent> = {
    async next() {
      try {
        const r = await inner.next();
        if (r.done) judge(false);
        else see(r.value);
        return r;
      } catch (err) {
        judge(false);
        throw err;
      }
    },
  };
  return {
    ...d,
    rest,
    cancel: () => {
      judge(undefined);
      d.cancel();
    },
  };
}
