// TGI's wire shapes as the agent reads them, and the rewrites that make TGI's OpenAI-compatible
// output indistinguishable from vLLM's for the router and its clients. Pure functions; the HTTP
// side is in tgi.ts.
//
// Checked against huggingface/text-generation-inference at db931fcf (router/src/{server,lib,chat}.rs,
// router/src/infer/mod.rs) and the captures in test/fixtures/tgi:
// - every chunk of /v1/chat/completions and /v1/completions has "id": "" (ChatCompletionChunk::new,
//   Chunk and CompletionFinal all use String::new()), so the adapter gives the request one id;
// - chat chunks carry "usage": null until the include_usage chunk (choices [] + usage, TGI >= 2.3);
// - /v1/completions stream chunks have finish_reason "" until the last one, which carries the
//   finish reason AND usage in the same chunk, always (no stream_options there); finish reasons are
//   TGI's own: "length", "eos_token", "stop_sequence" (chat maps eos_token to "stop" only);
// - an error inside an OpenAI-route stream is {"error":{"message","http_status_code":422}}
//   (InferError::into_openai_event), then "data: [DONE]";
// - /generate_stream events are StreamResponse objects: {index, token:{id,text,logprob,special},
//   generated_text: null|string, details: null|{finish_reason, generated_tokens, input_length, seed}};
//   the last one has generated_text set; there is no [DONE]; errors are {"error","error_type"};
// - SSE framing: `data:` with no space in the 2023/2024 captures (axum 0.6), `data: ` in the 3.2.1
//   capture; an SSE parser accepts both, so the adapter never depends on it.
import { randomBytes } from 'node:crypto';
import { createParser } from 'eventsource-parser';
import { z } from 'zod';

export const tgiTokenSchema = z.looseObject({
  id: z.number(),
  text: z.string(),
  logprob: z.number().nullable().optional(),
  special: z.boolean(),
});

export const tgiStreamResponseSchema = z.looseObject({
  index: z.number().optional(), // absent before TGI 1.x
  token: tgiTokenSchema,
  generated_text: z.string().nullable().optional(),
  details: z
    .looseObject({
      finish_reason: z.string(),
      generated_tokens: z.number(),
      input_length: z.number().optional(), // absent in the 2023 capture
      seed: z.number().nullable().optional(),
    })
    .nullable()
    .optional(),
});
export type TgiStreamResponse = z.infer<typeof tgiStreamResponseSchema>;

export const tgiGenerateResponseSchema = z.looseObject({
  generated_text: z.string(),
  details: z
    .looseObject({
      finish_reason: z.string(),
      generated_tokens: z.number(),
      prefill: z.array(z.unknown()).optional(),
      tokens: z.array(tgiTokenSchema).optional(),
    })
    .nullable()
    .optional(),
});

/** TGI's ErrorResponse, as HTTP bodies and /generate_stream error events. */
export const tgiErrorSchema = z.looseObject({ error: z.string(), error_type: z.string() });
/** The error event inside an OpenAI-route stream. */
export const tgiOpenAiStreamErrorSchema = z.looseObject({
  error: z.looseObject({ message: z.string(), http_status_code: z.number().optional() }),
});

export const tgiInfoSchema = z.looseObject({
  model_id: z.string(),
  max_input_tokens: z.number().optional(),
  max_input_length: z.number().optional(), // the field's name before TGI 2.0
  max_total_tokens: z.number(),
  version: z.string(),
});
export type TgiInfo = z.infer<typeof tgiInfoSchema>;

/** The data payloads of a whole SSE body (either `data:` framing). */
export function sseData(text: string): string[] {
  const out: string[] = [];
  const p = createParser({ onEvent: (ev) => out.push(ev.data) });
  p.feed(text);
  p.feed('\n\n'); // flush a last event that lacks its blank line
  return out;
}

/** TGI finish reasons -> OpenAI's. */
export function openAiFinishReason(r: unknown): string | null {
  if (r === null || r === undefined || r === '') return null;
  if (r === 'eos_token' || r === 'stop_sequence') return 'stop';
  return String(r);
}

export interface ChunkHead {
  id: string;
  created: number;
  model: string;
}
export function newHead(prefix: 'chatcmpl' | 'cmpl', model: string): ChunkHead {
  return { id: `${prefix}-${randomBytes(8).toString('hex')}`, created: Math.floor(Date.now() / 1000), model };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function withHead(o: Obj, head: ChunkHead): Obj {
  // TGI echoes the requested model on chat but its own model_id on completions: use the requested name.
  return { ...o, id: head.id, model: head.model };
}
function mapChoices(choices: unknown): unknown {
  if (!Array.isArray(choices)) return choices;
  return choices.map((c) => (isObj(c) && 'finish_reason' in c ? { ...c, finish_reason: openAiFinishReason(c.finish_reason) } : c));
}

/** A TGI chat chunk -> the same chunk with an id, the requested model, OpenAI finish reasons, no `usage: null`. */
export function normalizeChatChunk(o: Obj, head: ChunkHead): Obj {
  const out = withHead(o, head);
  out.choices = mapChoices(o.choices);
  if (out.usage === null) delete out.usage;
  return out;
}

/**
 * A TGI /v1/completions chunk -> one or two vLLM-like chunks: TGI puts usage on the last token
 * chunk; vLLM sends it as its own chunk (`choices: []`), which the router strips unless the client
 * asked for include_usage.
 */
export function normalizeCompletionChunk(o: Obj, head: ChunkHead): Obj[] {
  const out = withHead(o, head);
  out.object = 'text_completion';
  // The eos_token chunk's text is the special token itself ("</s>", "<|eot_id|>"): vLLM sends ''.
  out.choices = mapChoices(
    Array.isArray(o.choices) ? o.choices.map((c) => (isObj(c) && c.finish_reason === 'eos_token' ? { ...c, text: '' } : c)) : o.choices,
  );
  const usage = out.usage;
  delete out.usage;
  if (!isObj(usage)) return [out];
  const usageChunk: Obj = { id: head.id, object: 'text_completion', created: out.created, model: head.model, choices: [], usage };
  return Array.isArray(out.choices) && out.choices.length === 0 ? [usageChunk] : [out, usageChunk];
}

/** Non-streaming chat or completion response: id, model and finish reasons as OpenAI's. */
export function normalizeResponse(o: Obj, head: ChunkHead): Obj {
  return { ...withHead(o, head), choices: mapChoices(o.choices) };
}

// ---- translation for TGI without /v1/completions (before 1.4.4): /generate(_stream) ----

/** An OpenAI completions body -> TGI's GenerateRequest; throws a message for what cannot map. */
export function toGenerateRequest(body: Obj, stream: boolean): Obj {
  let prompt = body.prompt;
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1 || typeof prompt[0] !== 'string') throw new Error('this TGI version serves one string prompt per request');
    prompt = prompt[0];
  }
  if (typeof prompt !== 'string') throw new Error('`prompt` must be a string');
  if (typeof body.n === 'number' && body.n !== 1) throw new Error('`n` > 1 is not supported by this TGI version');
  const parameters: Obj = { details: true };
  if (typeof body.max_tokens === 'number') parameters.max_new_tokens = body.max_tokens;
  // TGI rejects temperature 0 ("must be strictly positive"): greedy is do_sample false.
  const t = body.temperature;
  if (typeof t === 'number' && t > 0) {
    parameters.temperature = t;
    parameters.do_sample = true;
  } else parameters.do_sample = false;
  if (typeof body.top_p === 'number' && body.top_p > 0 && body.top_p < 1) parameters.top_p = body.top_p;
  if (typeof body.seed === 'number') parameters.seed = body.seed;
  if (typeof body.stop === 'string') parameters.stop = [body.stop];
  else if (Array.isArray(body.stop)) parameters.stop = body.stop;
  if (typeof body.frequency_penalty === 'number') parameters.frequency_penalty = body.frequency_penalty;
  return { inputs: prompt, parameters, stream };
}

/** One /generate_stream event -> a text_completion chunk (and a usage chunk after the last token). */
export function generateEventToChunks(ev: TgiStreamResponse, head: ChunkHead): Obj[] {
  const finish = ev.details ? openAiFinishReason(ev.details.finish_reason) : null;
  const chunk: Obj = {
    id: head.id,
    object: 'text_completion',
    created: head.created,
    model: head.model,
    choices: [{ index: 0, text: ev.token.special ? '' : ev.token.text, logprobs: null, finish_reason: finish }],
  };
  if (!ev.details) return [chunk];
  const prompt = ev.details.input_length ?? 0;
  const usage = {
    prompt_tokens: prompt,
    completion_tokens: ev.details.generated_tokens,
    total_tokens: prompt + ev.details.generated_tokens,
  };
  return [chunk, { id: head.id, object: 'text_completion', created: head.created, model: head.model, choices: [], usage }];
}

/** A /generate answer -> an OpenAI text_completion response. */
export function generateResponseToCompletion(r: z.infer<typeof tgiGenerateResponseSchema>, head: ChunkHead, promptTokens: number): Obj {
  const completion = r.details?.generated_tokens ?? 0;
  return {
    id: head.id,
    object: 'text_completion',
    created: head.created,
    model: head.model,
    choices: [{ index: 0, text: r.generated_text, logprobs: null, finish_reason: openAiFinishReason(r.details?.finish_reason) ?? 'stop' }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion },
  };
}

/** TGI's error text from any of its error shapes, or null when `v` is not an error. */
export function tgiErrorMessage(v: unknown): { message: string; type: string } | null {
  const a = tgiErrorSchema.safeParse(v);
  if (a.success) return { message: a.data.error, type: a.data.error_type };
  const b = tgiOpenAiStreamErrorSchema.safeParse(v);
  if (b.success && !(isObj(v) && 'choices' in v)) return { message: b.data.error.message, type: '' };
  return null;
}

/** TGI's validation failures: 422 on the HTTP status, or in-stream with this message prefix. */
export function isValidationError(e: { message: string; type: string }): boolean {
  return e.type === 'validation' || e.message.startsWith('Input validation error') || e.message.startsWith('Template error');
}

/** (major, minor, patch) of a TGI version string such as "3.3.6-dev0" or "1.4.3". */
export function versionAtLeast(version: string, min: [number, number, number]): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return true; // unknown format: assume a current TGI
  const v = [Number(m[1]), Number(m[2]), Number(m[3])];
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
  return true;
}
