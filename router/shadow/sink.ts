// Ships shadow records to the control plane (POST /v1/admin/shadow/records with the admin token),
// batched every FLUSH_MS. A failed flush keeps the batch for the next one; the buffer is bounded
// (the oldest are dropped and counted). Without a control plane or admin token, records are only
// counted as dropped: the metrics still tell the outcome of every shadow.
import type { Logger } from '../../common/logger.ts';
import type { ShadowRecord } from '../../common/shadow-record.ts';

const FLUSH_MS = 500;
const MAX_BUFFER = 10_000;

export interface ShadowSink {
  readonly enabled: boolean;
  write(r: ShadowRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createShadowSink(
  controlPlaneUrl: string | undefined,
  routerToken: string | undefined,
  logger: Logger,
  counted: (result: 'written' | 'dropped', n: number) => void,
): ShadowSink {
  const enabled = Boolean(controlPlaneUrl && routerToken);
  let buffer: ShadowRecord[] = [];
  let flushing: Promise<void> | undefined;

  const flush = async (): Promise<void> => {
    if (flushing) return flushing;
    if (!enabled || buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    flushing = fetch(`${controlPlaneUrl}/v1/admin/shadow/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${routerToken}` },
      body: JSON.stringify({ records: batch }),
      signal: AbortSignal.timeout(5_000),
    })
      .then(async (res) => {
        if (!res.ok) throw new Error(`control plane answered ${res.status}`);
        counted('written', batch.length);
      })
      .catch((err: Error) => {
        logger.warn({ err: err.message, records: batch.length }, 'shadow records not written; retrying');
        buffer = batch.concat(buffer);
        trim();
      })
      .finally(() => (flushing = undefined));
    return flushing;
  };

  const trim = () => {
    if (buffer.length <= MAX_BUFFER) return;
    const dropped = buffer.length - MAX_BUFFER;
    buffer = buffer.slice(dropped);
    counted('dropped', dropped);
  };

  const timer = setInterval(() => void flush(), FLUSH_MS);
  timer.unref();

  return {
    enabled,
    write(r) {
      if (!enabled) return counted('dropped', 1);
      buffer.push(r);
      trim();
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush().catch(() => undefined);
    },
  };
}
