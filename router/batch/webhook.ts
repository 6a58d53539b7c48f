// Completion announcements, signed as OpenAI's own webhooks are (the Standard Webhooks scheme):
// headers `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64>`.
// Delivery (no redirects, internal targets refused unless allowed, pinned address) and signing
// are router/webhooks/delivery.ts, shared with the budget webhook.
import { postWebhook, webhookHeaders, type OutboundPolicy } from '../webhooks/delivery.ts';
import type { BatchStatus } from './types.ts';

export { signWebhook } from '../webhooks/delivery.ts';

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

const NO_INTERNAL: OutboundPolicy = { allowPrivateTargets: false, allowTargets: [] };

/** One delivery attempt; true on a 2xx (a 3xx is a failure: redirects are not followed). */
export async function deliver(
  url: string,
  secret: string | undefined,
  event: BatchEvent,
  timeoutMs: number,
  policy: Partial<OutboundPolicy> = {},
): Promise<boolean> {
  const body = JSON.stringify(event);
  const res = await postWebhook(url, body, {
    timeoutMs,
    policy: { ...NO_INTERNAL, ...policy },
    headers: webhookHeaders(secret, event.id, body),
  });
  return res.ok;
}
