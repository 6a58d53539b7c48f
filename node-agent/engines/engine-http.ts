// HTTP plumbing every engine adapter shares: the keep-alive pool to the engine, the health and
// metrics probes, and how transport failures map to EngineError kinds. Only each engine's routes,
// wire format and HTTP-status mapping live in its own adapter.
import { Agent, request, errors as undiciErrors } from 'undici';
import { EngineError } from './engine.ts';

export function createEngineDispatcher(requestTimeoutMs: number): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    connections: 512,
    // Streams can be silent for a long time while the request waits in the engine's queue.
    bodyTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
  });
}

/** True when `GET base/health` answers 200; never throws. */
export async function probeHealth(base: string, dispatcher: Agent, signal?: AbortSignal): Promise<boolean> {
  try {
    const res = await request(base + '/health', { method: 'GET', signal, dispatcher, headersTimeout: 2_000, bodyTimeout: 2_000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** The Prometheus text of `GET base/metrics`, or ENGINE_UNAVAILABLE. */
export async function fetchMetricsText(base: string, dispatcher: Agent, signal?: AbortSignal): Promise<string> {
  const res = await request(base + '/metrics', { method: 'GET', signal, dispatcher, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new EngineError('ENGINE_UNAVAILABLE', `/metrics answered ${res.statusCode}`);
  return text;
}

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function classifyTransportError(err: unknown, signal: AbortSignal): EngineError {
  if (signal.aborted) return new EngineError('CANCELLED', 'request cancelled');
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new EngineError('TIMEOUT', 'engine did not answer in time');
  }
  const code = (err as { code?: string }).code ?? '';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE'].includes(code)) {
    return new EngineError('ENGINE_UNAVAILABLE', `engine unreachable (${code})`);
  }
  return new EngineError('ENGINE_ERROR', `engine connection failed: ${(err as Error).message ?? String(err)}`);
}
