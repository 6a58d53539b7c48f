// Request bodies of the OpenAI generation endpoints. Strict on the fields the router acts on,
// open for the rest (engines such as vLLM accept extra sampling parameters and pass them on).
import { z } from 'zod';
import { errors } from '../../common/errors.ts';

const MAX_STRING = 1_000_000; // characters; the body limit bounds the total anyway

const contentPart = z.looseObject({ type: z.string().min(1).max(64) });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string().max(MAX_STRING), z.array(contentPart).max(1_000), z.null()]).optional(),
  name: z.string().max(256).optional(),
});

const streamOptions = z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional();
const stop = z.union([z.string().max(1_000), z.array(z.string().max(1_000)).max(16), z.null()]).optional();

const sampling = {
  model: z.string().min(1).max(256),
  stream: z.boolean().nullable().optional(),
  stream_options: streamOptions,
  max_tokens: z.number().int().positive().max(10_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  n: z.literal(1).nullable().optional(),
  stop,
  seed: z.number().int().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  user: z.string().max(256).optional(),
};

export const chatCompletionBody = z.looseObject({
  ...sampling,
  messages: z.array(message).min(1).max(10_000),
  max_completion_tokens: z.number().int().positive().max(10_000_000).nullable().optional(),
});

export const completionBody = z.looseObject({
  ...sampling,
  prompt: z.union([z.string().max(MAX_STRING), z.array(z.string().max(MAX_STRING)).min(1).max(1)]),
});

export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;
export type CompletionBody = z.infer<typeof completionBody>;

/** Parses a body or throws a 400 in OpenAI's shape naming the first offending parameter. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw errors.invalidRequest('The request body must be a JSON object.');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  const message =
    issue.code === 'invalid_type' && issue.input === undefined
      ? `Missing required parameter: '${param}'.`
      : `Invalid value for '${param ?? 'body'}': ${issue.message}`;
  throw errors.invalidRequest(
    message,
    param,
    issue.code === 'invalid_type' && issue.input === undefined ? 'missing_required_parameter' : 'invalid_value',
  );
}
