// OpenAI wire-format helpers shared by the router (replay) and the agent (answer_format 1):
// string-level spec normalisation of engine chunks and SSE framing.

/** The usage-only chunk (`choices: []` + usage) that is sent only to clients that asked for it. */
export function isUsageOnlyChunk(json: string): boolean {
  if (!json.includes('"usage"')) return false;
  try {
    const c = JSON.parse(json) as { choices?: unknown[]; usage?: unknown };
    return Array.isArray(c.choices) && c.choices.length === 0 && c.usage !== null && c.usage !== undefined;
  } catch {
    return false;
  }
}

/** A top-level-or-nested `"usage":` key (a quote inside a JSON string is escaped, so this is always a key). */
const USAGE_KEY = /(?<!\\)"usage"\s*:/;

/**
 * With `stream_options.include_usage`, OpenAI sends `"usage": null` on every chunk before the
 * usage-only one: added at the string level (no parse) to a chunk that has no usage key.
 */
export function withNullUsage(json: string): string {
  if (json.charCodeAt(0) !== 0x7b /* { */ || USAGE_KEY.test(json)) return json;
  return /^\{\s*\}$/.test(json) ? '{"usage":null}' : `{"usage":null,${json.slice(1)}`;
}

/**
 * Fields vLLM writes as null where OpenAI's schema has them either set or absent (the spec gives
 * them no null): dropped from a JSON body at the string level. A quote that opens a key is never
 * escaped, so these patterns never match inside a string value.
 */
const DISALLOWED_NULLS =
  /,"(?:annotations|function_call|system_fingerprint|prompt_tokens_details|completion_tokens_details)":null(?=[,}])/g;
const DISALLOWED_FIRST_NULLS =
  /\{"(?:annotations|function_call|system_fingerprint|prompt_tokens_details|completion_tokens_details)":null(,|(?=\}))/g;

/** A response body without the nulls OpenAI's schema does not allow (see DISALLOWED_NULLS). */
export function omitDisallowedNulls(json: string): string {
  if (!json.includes('":null')) return json;
  return json.replace(DISALLOWED_NULLS, '').replace(DISALLOWED_FIRST_NULLS, '{');
}

/** One SSE event exactly as OpenAI writes it: `data: <json>\n\n`. */
export function sseFrame(json: string): string {
  return `data: ${json}\n\n`;
}
