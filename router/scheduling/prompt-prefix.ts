// What the scheduler needs to know about a prompt without tokenizing it: a token estimate and a
// chain of block hashes of its leading text, so requests that share a prefix (the turns of one
// conversation, one tenant's long system prompt) can be recognised.

/** ~4 characters per token for English text with BPE tokenizers; an estimate, not a count. */
export const CHARS_PER_TOKEN = 4;

export interface PromptPrefix {
  promptTokens: number;
  prefixHashes: string[];
}

/** The prompt as one string: roles and contents of chat messages, or the completion prompt. */
export function promptText(body: Record<string, unknown>): string {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    let s = '';
    for (const m of messages as { role?: unknown; content?: unknown }[]) {
      s += `<|${String(m.role ?? '')}|>`;
      if (typeof m.content === 'string') s += m.content;
      else if (Array.isArray(m.content)) for (const p of m.content as { text?: unknown }[]) if (typeof p?.text === 'string') s += p.text;
    }
    return s;
  }
  const p = body.prompt;
  if (typeof p === 'string') return p;
  if (Array.isArray(p) && typeof p[0] === 'string') return p[0];
  return '';
}

/**
 * FNV-1a over each full block, chained through the previous block's hash, so a block hash names
 * the whole prefix up to it (like vLLM's block hashes). Only full blocks count; at most maxBlocks.
 */
export function prefixHashes(text: string, blockChars = 256, maxBlocks = 64): string[] {
  const out: string[] = [];
  let h = 0x811c9dc5;
  const blocks = Math.min(maxBlocks, Math.floor(text.length / blockChars));
  for (let b = 0; b < blocks; b++) {
    for (let i = b * blockChars, end = i + blockChars; i < end; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    out.push(h.toString(36));
  }
  return out;
}

export function analysePrompt(body: Record<string, unknown>, blockChars = 256, maxBlocks = 64): PromptPrefix {
  const text = promptText(body);
  return { promptTokens: Math.ceil(text.length / CHARS_PER_TOKEN), prefixHashes: prefixHashes(text, blockChars, maxBlocks) };
}
