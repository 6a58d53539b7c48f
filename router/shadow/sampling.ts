// Which requests are mirrored: a hash of the rule and the request id, so the choice is
// deterministic (a retried request id is sampled the same way, a test can predict it) and
// independent between rules.
import { createHash } from 'node:crypto';

/** A number in [0, 100) from the hash of `ruleId` and `requestId`. */
export function samplePoint(ruleId: string, requestId: string): number {
  const h = createHash('sha256').update(ruleId).update('\0').update(requestId).digest();
  return (h.readUInt32BE(0) / 0x1_0000_0000) * 100;
}

export function isSampled(ruleId: string, requestId: string, percent: number): boolean {
  return percent > 0 && samplePoint(ruleId, requestId) < percent;
}
