// The input file's request lines in, the output and error files' lines out, in OpenAI's shapes:
// {"custom_id","method":"POST","url","body"} in; {"id","custom_id","response":{"status_code",
// "request_id","body"},"error"} out (`response` null and `error` set when an item never ran).
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { BatchError, ItemSpec, ResultLine } from './types.ts';

export const SUPPORTED_ENDPOINTS = ['/v1/chat/completions', '/v1/completions'] as const;

const lineSchema = z.object({
  custom_id: z.string().min(1).max(512),
  method: z.literal('POST'),
  url: z.string(),
  body: z.record(z.string(), z.unknown()),
});

export const newId = (prefix: string) => `${prefix}${randomBytes(12).toString('hex')}`;

/** Parses a JSONL input file; every problem is reported with its line number (1-based), as OpenAI does. */
export function parseInput(content: string, endpoint: string, maxItems: number): { items: ItemSpec[]; errors: BatchError[] } {
  const items: ItemSpec[] = [];
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  const lines = content.split('\n');
  for (let i = 0; i < lines.length && errors.length < 100; i += 1) {
    const text = lines[i]!.trim();
    if (!text) continue;
    const line = i + 1;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      errors.push({ code: 'invalid_json_line', line, message: 'This line is not parseable as valid JSON.', param: null });
      continue;
    }
    const r = lineSchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      errors.push({
        code: 'invalid_request',
        line,
        message: `${issue.path.join('.') || 'line'}: ${issue.message}`,
        param: issue.path.join('.') || null,
      });
      continue;
    }
    if (r.data.url !== endpoint) {
      errors.push({
        code: 'mismatched_endpoint',
        line,
        message: `The url of this line (${r.data.url}) does not match the batch's endpoint (${endpoint}).`,
        param: 'url',
      });
      continue;
    }
    if (typeof r.data.body.model !== 'string') {
      errors.push({ code: 'missing_required_parameter', line, message: 'body.model is required.', param: 'body.model' });
      continue;
    }
    if (seen.has(r.data.custom_id)) {
      errors.push({
        code: 'duplicate_custom_id',
        line,
        message: `The custom_id ${r.data.custom_id} is used more than once.`,
        param: 'custom_id',
      });
      continue;
    }
    seen.add(r.data.custom_id);
    items.push({ index: items.length, custom_id: r.data.custom_id, method: 'POST', url: r.data.url, body: r.data.body });
  }
  if (!errors.length && items.length === 0)
    errors.push({ code: 'empty_file', line: null, message: 'The input file has no requests.', param: null });
  if (items.length > maxItems)
    errors.push({ code: 'too_many_requests', line: null, message: `A batch may hold at most ${maxItems} requests.`, param: null });
  return { items, errors };
}

export function responseLine(item: ItemSpec, statusCode: number, requestId: string, body: unknown): string {
  const line: ResultLine = {
    id: newId('batch_req_'),
    custom_id: item.custom_id,
    response: { status_code: statusCode, request_id: requestId, body },
    error: null,
  };
  return JSON.stringify(line);
}

export function errorLine(item: ItemSpec, code: string, message: string): string {
  const line: ResultLine = { id: newId('batch_req_'), custom_id: item.custom_id, response: null, error: { code, message } };
  return JSON.stringify(line);
}

/** Lines in item order, as one JSONL file. */
export function toJsonl(lines: Map<number, string>): string {
  return [...lines.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, l]) => `${l}\n`)
    .join('');
}
