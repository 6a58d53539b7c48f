// Request bodies of the OpenAI generation endpoints: the types of OpenAI's fields (openai-openapi).
// Which fields may be there at all (OpenAI's plus the allowed engine extras) is request-fields.ts's
// check, made once the model, and with it the engine kind, is known.
import { z } from 'zod';
import { integer, parseWith } from './request-fields.ts';

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
  max_tokens: integer().positive().max(10_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  // OpenAI's range; the server's cap (router.requestFields.maxN) is request-fields.ts's.
  n: integer().min(1).max(128).nullable().optional(),
  stop,
  seed: integer().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  user: z.string().max(256).optional(),
  logit_bias: z.record(z.string().max(32), z.number().min(-100).max(100)).nullable().optional(),
};

const tool = z.looseObject({ type: z.string().min(1).max(64) });

export const chatCompletionBody = z.looseObject({
  ...sampling,
  messages: z.array(message).min(1).max(10_000),
  max_completion_tokens: integer().positive().max(10_000_000).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: integer().min(0).max(20).nullable().optional(),
  tools: z.array(tool).max(128).optional(),
  tool_choice: z.union([z.string().max(64), z.looseObject({ type: z.string().max(64) })]).optional(),
  parallel_tool_calls: z.boolean().optional(),
  response_format: z.looseObject({ type: z.string().min(1).max(64) }).optional(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
  store: z.boolean().nullable().optional(),
});

export const completionBody = z.looseObject({
  ...sampling,
  prompt: z.union([z.string().max(MAX_STRING), z.array(z.string().max(MAX_STRING)).min(1).max(1)]),
  best_of: integer().min(1).max(20).nullable().optional(),
  echo: z.boolean().nullable().optional(),
  logprobs: integer().min(0).max(5).nullable().optional(),
  suffix: z.string().max(MAX_STRING).nullable().optional(),
});

export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;
export type CompletionBody = z.infer<typeof completionBody>;

/** Parses a body or throws a 400 in OpenAI's shape naming the first offending parameter (and, for a wrong type, the expected one). */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  return parseWith(schema, body);
}
