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

type LineVerdict = { item: Omit<ItemSpec, 'index'> } | { error: BatchError };

/** Checks one non-empty input line (1-based `line`); `seen` holds the custom_ids so far. */
function checkLine(text: string, line: number, endpoint: string, seen: Set<string>): LineVerdict {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { error: { code: 'invalid_json_line', line, message: 'This line is not parseable as valid JSON.', param: null } };
  }
  const r = lineSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return {
      error: {
        code: 'invalid_request',
        line,
        message: `${issue.path.join('.') || 'line'}: ${issue.message}`,
        param: issue.path.join('.') || null,
      },
    };
  }
  if (r.data.url !== endpoint)
    return {
      error: {
        code: 'mismatched_endpoint',
        line,
        message: `The url of this line (${r.data.url}) does not match the batch's endpoint (${endpoint}).`,
        param: 'url',
      },
    };
  if (typeof r.data.body.model !== 'string')
    return { error: { code: 'missing_required_parameter', line, message: 'body.model is required.', param: 'body.model' } };
  if (seen.has(r.data.custom_id))
    return {
      error: {
        code: 'duplicate_custom_id',
        line,
        message: `The custom_id ${r.data.custom_id} is used more than once.`,
        param: 'custom_id',
      },
    };
  seen.add(r.data.custom_id);
  return { item: { custom_id: r.data.custom_id, method: 'POST', url: r.data.url, body: r.data.body } };
}

const MAX_REPORTED = 100;

function finish(count: number, errors: BatchError[], maxItems: number): BatchError[] {
  if (!errors.length && count === 0)
    errors.push({ code: 'empty_file', line: null, message: 'The input file has no requests.', param: null });
  if (count > maxItems)
    errors.push({ code: 'too_many_requests', line: null, message: `A batch may hold at most ${maxItems} requests.`, param: null });
  return errors;
}

/** Parses a JSONL input held as a string (tests, small inputs); every problem named by its line number, as OpenAI does. */
export function parseInput(content: string, endpoint: string, maxItems: number): { items: ItemSpec[]; errors: BatchError[] } {
  const items: ItemSpec[] = [];
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  const lines = content.split('\n');
  for (let i = 0; i < lines.length && errors.length < MAX_REPORTED; i += 1) {
    const text = lines[i]!.trim();
    if (!text) continue;
    const v = checkLine(text, i + 1, endpoint, seen);
    if ('error' in v) errors.push(v.error);
    else items.push({ index: items.length, ...v.item });
  }
  return { items, errors: finish(items.length, errors, maxItems) };
}

/**
 * Splits a byte stream into lines without ever holding more than one line (at most `maxLineBytes`)
 * plus one chunk: a longer line is yielded as `null` text and skipped to its end.
 */
export async function* readLines(
  source: AsyncIterable<Buffer | string>,
  maxLineBytes: number,
): AsyncGenerator<{ line: number; text: string | null }> {
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  let line = 0;
  for await (const c of source) {
    let chunk = typeof c === 'string' ? Buffer.from(c) : c;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10)) {
      const head = chunk.subarray(0, nl);
      chunk = chunk.subarray(nl + 1);
      line += 1;
      if (tooLong || size + head.length > maxLineBytes) yield { line, text: null };
      else yield { line, text: Buffer.concat([...parts, head]).toString('utf8') };
      parts = [];
      size = 0;
      tooLong = false;
    }
    if (chunk.length && !tooLong) {
      if (size + chunk.length > maxLineBytes) {
        tooLong = true;
        parts = [];
      } else {
        parts.push(Buffer.from(chunk)); // a copy: the source may reuse its buffer
        size += chunk.length;
      }
    }
  }
  if (tooLong) yield { line: line + 1, text: null };
  else if (size) yield { line: line + 1, text: Buffer.concat(parts).toString('utf8') };
}

/**
 * Parses an input file line by line from its stream, handing each valid item to `onItem` as it
 * comes (the caller writes it to disk): the file is never one string in memory. Items past
 * `maxItems` are counted, not handed on.
 */
export async function parseInputStream(
  source: AsyncIterable<Buffer | string>,
  opts: { endpoint: string; maxItems: number; maxLineBytes: number },
  onItem: (item: ItemSpec) => Promise<void>,
): Promise<{ count: number; errors: BatchError[] }> {
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  let count = 0;
  for await (const { line, text } of readLines(source, opts.maxLineBytes)) {
    if (errors.length >= MAX_REPORTED) break;
    if (text === null) {
      errors.push({ code: 'line_too_long', line, message: `This line is longer than ${opts.maxLineBytes} bytes.`, param: null });
      continue;
    }
    const t = text.trim();
    if (!t) continue;
    const v = checkLine(t, line, opts.endpoint, seen);
    if ('error' in v) {
      errors.push(v.error);
      continue;
    }
    count += 1;
    // Past the cap the file is refused anyway: stop reading (and remembering custom_ids).
    if (count > opts.maxItems) break;
    if (!errors.length) await onItem({ index: count - 1, ...v.item });
  }
  return { count, errors: finish(count, errors, opts.maxItems) };
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
