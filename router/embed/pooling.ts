// Turning a graph output into one vector (or one score) per sequence. Runs in the inference worker.

/** Mean of token vectors weighted by the attention mask: [batch, seq, hidden] -> [batch, hidden]. */
export function meanPool(data: Float32Array, mask: BigInt64Array | Int32Array, batch: number, seq: number, hidden: number): Float32Array {
  const out = new Float32Array(batch * hidden);
  for (let b = 0; b < batch; b++) {
    let count = 0;
    const o = b * hidden;
    for (let s = 0; s < seq; s++) {
      if (Number(mask[b * seq + s]) === 0) continue;
      count++;
      const base = (b * seq + s) * hidden;
      for (let h = 0; h < hidden; h++) out[o + h]! += data[base + h]!;
    }
    const inv = 1 / Math.max(count, 1e-9);
    for (let h = 0; h < hidden; h++) out[o + h]! *= inv;
  }
  return out;
}

/** First token's vector ([CLS]): [batch, seq, hidden] -> [batch, hidden]. */
export function clsPool(data: Float32Array, batch: number, seq: number, hidden: number): Float32Array {
  const out = new Float32Array(batch * hidden);
  for (let b = 0; b < batch; b++) out.set(data.subarray(b * seq * hidden, b * seq * hidden + hidden), b * hidden);
  return out;
}

/** In-place L2 normalisation of each row; a zero row stays zero (never NaN). */
export function l2NormalizeRows(data: Float32Array, rows: number, cols: number): Float32Array {
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += data[r * cols + c]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(sum), 1e-12);
    for (let c = 0; c < cols; c++) data[r * cols + c]! *= inv;
  }
  return data;
}

/** Matryoshka: keep the first `dims` values, then re-normalise. */
export function truncateDimensions(v: Float32Array, dims: number, normalize: boolean): Float32Array {
  const out = v.slice(0, dims);
  return normalize ? l2NormalizeRows(out, 1, dims) : out;
}
