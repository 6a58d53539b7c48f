// Tokens and text for the simulator, without a real tokenizer.
//
// Token counting is an ESTIMATE: about 4 characters per token (OpenAI's rule of thumb for
// English with BPE tokenizers), at least 1 token per non-empty text. Chat prompts add a few
// tokens per message for the chat template's role markers, as real templates do. The numbers
// are only meant to be stable and plausible, not to match any one model's tokenizer.

export const CHARS_PER_TOKEN = 4;
/** template overhead per chat message (role header + end-of-turn), a rough Llama-3-like figure */
export const TOKENS_PER_CHAT_MESSAGE = 4;

export function estimateTokens(text: string): number {
  if (text.length === 0) return 0;
  return Math.max(1, Math.ceil(text.length / CHARS_PER_TOKEN));
}

/** 32-bit FNV-1a: a fast, stable string hash (not cryptographic; only for seeding and block keys). */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** mulberry32: a tiny seeded PRNG; same seed -> same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is that for it as with on was by at be this are from or an which have not ' +
  'model token batch cache engine request queue latency stream prefix block decode prefill ' +
  'node router schedule serve GPU memory context window sequence output input signal load ' +
  'quick bright calm steady simple careful open clear small large fast slow early late'
).split(' ');

export interface OutputPlan {
  /** how many tokens the "model" wants to say before it stops on its own */
  naturalTokens: number;
  nextWord: () => string;
}

/**
 * Deterministic output for (seed, prompt): the same pair always yields the same words and the
 * same natural length. Each token is one word; every token after the first carries its
 * leading space, the way BPE tokens do.
 */
export function planOutput(seed: number, prompt: string, minTokens = 16, maxTokens = 64): OutputPlan {
  const rng = mulberry32(fnv1a(prompt, fnv1a(String(seed))));
  const naturalTokens = minTokens + Math.floor(rng() * (maxTokens - minTokens + 1));
  let i = 0;
  return {
    naturalTokens,
    nextWord: () => {
      const w = WORDS[Math.floor(rng() * WORDS.length)]!;
      return i++ === 0 ? w : ' ' + w;
    },
  };
}

/**
 * Hash chain of the prompt's FULL blocks (blockSize tokens ~ blockSize x 4 chars each): block k's
 * key covers everything before it, so a hit on block k implies hits on 0..k-1, as in vLLM's
 * prefix caching. A partial last block is never cached (vLLM caches only full blocks).
 */
export function prefixBlockHashes(prompt: string, blockSize: number): string[] {
  const blockChars = blockSize * CHARS_PER_TOKEN;
  const out: string[] = [];
  let h = 0x811c9dc5;
  for (let start = 0; start + blockChars <= prompt.length; start += blockChars) {
    h = fnv1a(prompt.slice(start, start + blockChars), h);
    out.push(`${out.length}:${h.toString(16)}`);
  }
  return out;
}
