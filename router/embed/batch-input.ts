// Padding a group of tokenized sequences into the int64 [batch, seq] arrays the graph takes.
import { endianness } from 'node:os';
import type { Encoded } from './tokenizer.ts';

/** One padded batch: int64 [batch, seq] arrays as BigInt64Array buffers. */
export interface BatchInput {
  batch: number;
  seq: number;
  inputIds: ArrayBuffer;
  attentionMask: ArrayBuffer;
  tokenTypeIds: ArrayBuffer;
}

const LITTLE_ENDIAN = endianness() === 'LE';

function int64(values: (e: Encoded) => number[], seqs: Encoded[], seq: number, fill?: number): ArrayBuffer {
  const big = new BigInt64Array(seqs.length * seq);
  if (LITTLE_ENDIAN) {
    // Ids are small non-negative ints: write the low 32-bit words, skipping BigInt conversions.
    const lo = new Int32Array(big.buffer);
    seqs.forEach((e, b) => {
      const v = values(e);
      for (let s = 0; s < v.length; s++) lo[(b * seq + s) * 2] = fill ?? v[s]!;
    });
  } else {
    seqs.forEach((e, b) => {
      const v = values(e);
      for (let s = 0; s < v.length; s++) big[b * seq + s] = BigInt(fill ?? v[s]!);
    });
  }
  return big.buffer;
}

/** Pads with id 0, mask 0, type 0 to the longest sequence of the group. */
export function buildBatchInput(seqs: Encoded[]): BatchInput {
  const seq = Math.max(1, ...seqs.map((e) => e.ids.length));
  return {
    batch: seqs.length,
    seq,
    inputIds: int64((e) => e.ids, seqs, seq),
    attentionMask: int64((e) => e.ids, seqs, seq, 1),
    tokenTypeIds: int64((e) => e.typeIds, seqs, seq),
  };
}

/** Splits a batch into groups of similar length so short inputs are not padded to long ones.
 *  Returns index groups into `lengths`. */
export function groupByLength(lengths: number[], minGroup = 4): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]!);
  const groups: number[][] = [];
  let cur: number[] = [];
  let longest = 0;
  for (const i of order) {
    // Start a new group once an input is under half the group's longest: padding would double it.
    if (cur.length >= minGroup && lengths[i]! * 2 < longest) {
      groups.push(cur);
      cur = [];
    }
    if (cur.length === 0) longest = lengths[i]!;
    cur.push(i);
  }
  if (cur.length) groups.push(cur);
  return groups;
}
