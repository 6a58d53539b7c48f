// Completion announcements, signed as OpenAI's own webhooks are (the Standard Webhooks scheme):
// headers `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64>`,
// the HMAC-SHA256 of `<id>.<timestamp>.<body>` keyed with the secret (a `whsec_` secret is
// base64-decoded first). The openai SDK's `client.webhooks.unwrap(body, headers, secret)` verifies it.
import { createHmac } from 'node:crypto';
import type { BatchStatus } from './types.ts';

export interface BatchEvent {
  id: string;
  object: 'event';
  type: `batch.${'completed' | 'failed' | 'expired' | 'cancelled'}`;
  created_at: number;
  data: { id: string };
}

export function eventFor(eventId: string, batchId: string, status: BatchStatus, at: number): BatchEvent {
  const type = status === 'completed' || status === 'failed' || status === 'expired' || status === 'cancelled' ? status : 'completed';
  return { id: eventId, object: 'event', type: `batch.${type}`, created_at: at, data: { id: batchId } };
}

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** One delivery attempt; true on a 2xx. */
export async function deliver(url: string, secret: string | undefined, event: BatchEvent, timeoutMs: number): Promise<boolean> {
  const body = JSON.stringify(event);
  const ts = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'webhook-id': event.id, 'webhook-timestamp': String(ts) };
  if (secret) headers['webhook-signature'] = signWebhook(secret, event.id, ts, body);
  try {
    const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  } catch {
    return false;
  }
}
