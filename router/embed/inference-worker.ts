// Worker thread entry: owns the model's tokenizer and one onnxruntime session. A batch arrives as
// raw texts; the worker tokenizes them (truncation rules, special tokens, too-long checks), groups
// them by token length, pads, runs, pools, and sends back one buffer of vectors in item order.
// The main thread only routes requests and results.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { buildBatchInput, groupByLength, type BatchInput } from './batch-input.ts';
import { clsPool, l2NormalizeRows, meanPool } from './pooling.ts';
import { TextTokenizer, TooLongError, type Encoded } from './tokenizer.ts';
import type { FromWorker, ItemFailure, RunInput, RunOutput, ToWorker, WorkerInit } from './worker-protocol.ts';
import { own } from '../../common/own.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function createSession(): Promise<{ session: ort.InferenceSession; provider: 'cpu' | 'cuda'; fallbackReason?: string }> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: init.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
  if (init.executionProvider === 'cuda') {
    ort.env.logLevel = 'fatal';
    try {
      const session = await ort.InferenceSession.create(init.modelPath, {
        ...base,
        // The fallback is logged once by the main thread; keep onnxruntime's own error quiet.
        logSeverityLevel: 4,
        executionProviders: [{ name: 'cuda', deviceId: init.cudaDeviceId }],
      });
      return { session, provider: 'cuda' };
    } catch (err) {
      const session = await ort.InferenceSession.create(init.modelPath, { ...base, executionProviders: ['cpu'] });
      return { session, provider: 'cpu', fallbackReason: String(err).split('\n')[0] };
    }
  }
  const session = await ort.InferenceSession.create(init.modelPath, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu' };
}

function pickOutput(names: readonly string[]): string {
  if (init.output) {
    if (!names.includes(init.output)) throw new Error(`model has no output '${init.output}' (outputs: ${names.join(', ')})`);
    return init.output;
  }
  const preferred = init.kind === 'rerank' ? ['logits', 'scores'] : ['sentence_embedding', 'last_hidden_state', 'token_embeddings'];
  return preferred.find((n) => names.includes(n)) ?? names[0]!;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Tokenizes every item; failures (too long, tokenizer errors) are reported per item. */
function tokenize(tokenizer: TextTokenizer, input: RunInput): { encs: (Encoded | null)[]; failures: ItemFailure[] } {
  const failures: ItemFailure[] = [];
  const encs: (Encoded | null)[] = new Array(input.texts.length).fill(null);
  if (init.kind === 'rerank') {
    const queries = input.queries ?? [];
    const qIdx = input.queryIndex ?? new Int32Array(input.texts.length);
    const qContent: (number[] | Error)[] = queries.map((q) => {
      try {
        return tokenizer.content(q);
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    });
    input.texts.forEach((passage, i) => {
      const q = qContent[qIdx[i]!];
      try {
        if (q === undefined) throw new Error('no query for this passage');
        if (q instanceof Error) throw q;
        encs[i] = tokenizer.encodePair(q, passage, init.maxLength);
      } catch (err) {
        failures.push({ index: i, message: message(err) });
      }
    });
  } else {
    input.texts.forEach((text, i) => {
      try {
        encs[i] = tokenizer.encode(text, init.maxLength, input.truncate?.[i] === 1);
      } catch (err) {
        if (err instanceof TooLongError)
          failures.push({ index: i, message: err.message, tooLong: { tokens: err.tokens, maxLength: err.maxLength } });
        else failures.push({ index: i, message: message(err) });
      }
    });
  }
  return { encs, failures };
}

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  let output: string;
  let tokenizer: TextTokenizer;
  try {
    tokenizer = await TextTokenizer.load(init.tokenizerPath, init.tokenizerConfigPath);
    const s = await createSession();
    session = s.session;
    output = pickOutput(session.outputNames);
    post({
      type: 'ready',
      provider: s.provider,
      fallbackReason: s.fallbackReason,
      output,
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
    });
  } catch (err) {
    post({ type: 'init-error', message: message(err) });
    return;
  }
  const inputNames = new Set(session.inputNames);

  /** One padded group -> rows x cols float32. */
  const runGroup = async (b: BatchInput): Promise<{ cols: number; data: Float32Array }> => {
    const dims = [b.batch, b.seq];
    const mask = new BigInt64Array(b.attentionMask);
    const feeds: Record<string, ort.Tensor> = {};
    // Feed only what the graph declares: some exports (DistilBERT, RoBERTa) have no token_type_ids.
    if (inputNames.has('input_ids')) feeds.input_ids = new ort.Tensor('int64', new BigInt64Array(b.inputIds), dims);
    if (inputNames.has('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', mask, dims);
    if (inputNames.has('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(b.tokenTypeIds), dims);
    const result = await session.run(feeds, [output]);
    const t = own(result, output)!;
    const data = t.data as Float32Array;
    try {
      if (init.kind === 'rerank') {
        const cols = t.dims.length >= 2 ? Number(t.dims[t.dims.length - 1]) : 1;
        if (init.logitIndex >= cols) throw new Error(`logitIndex ${init.logitIndex} out of range for output with ${cols} columns`);
        const scores = new Float32Array(b.batch);
        for (let i = 0; i < b.batch; i++) scores[i] = data[i * cols + init.logitIndex]!;
        return { cols: 1, data: scores };
      }
      let vecs: Float32Array;
      let hidden: number;
      if (t.dims.length === 3) {
        hidden = Number(t.dims[2]);
        if (init.pooling === 'none') throw new Error(`output '${output}' is per-token; set pooling to mean or cls`);
        vecs = init.pooling === 'cls' ? clsPool(data, b.batch, b.seq, hidden) : meanPool(data, mask, b.batch, b.seq, hidden);
      } else if (t.dims.length === 2) {
        hidden = Number(t.dims[1]);
        vecs = data.slice(0, b.batch * hidden);
      } else {
        throw new Error(`output '${output}' has unsupported shape [${t.dims.join(', ')}]`);
      }
      if (init.normalize) l2NormalizeRows(vecs, b.batch, hidden);
      return { cols: hidden, data: vecs };
    } finally {
      for (const v of Object.values(result)) v.dispose();
    }
  };

  const runBatch = async (input: RunInput): Promise<RunOutput> => {
    const t0 = performance.now();
    const { encs, failures } = tokenize(tokenizer, input);
    const n = input.texts.length;
    const tokens = new Int32Array(n);
    const ok: number[] = [];
    encs.forEach((e, i) => {
      if (e) {
        ok.push(i);
        tokens[i] = e.ids.length;
      }
    });
    const t1 = performance.now();
    // Groups of similar length (from the real token counts), so short inputs are not padded to long ones.
    const groups = groupByLength(ok.map((i) => tokens[i]!)).map((g) => g.map((k) => ok[k]!));
    let cols = 0;
    let out = new Float32Array(0);
    let paddedTokens = 0;
    for (const g of groups) {
      const b = buildBatchInput(g.map((i) => encs[i]!));
      paddedTokens += b.batch * b.seq;
      const r = await runGroup(b);
      if (out.length === 0) {
        cols = r.cols;
        out = new Float32Array(n * cols);
      }
      g.forEach((item, row) => out.set(r.data.subarray(row * cols, (row + 1) * cols), item * cols));
    }
    return {
      cols,
      data: out.buffer as ArrayBuffer,
      tokens: tokens.buffer as ArrayBuffer,
      failures,
      groups: groups.length,
      paddedTokens,
      tokenizeMs: t1 - t0,
      runMs: performance.now() - t1,
    };
  };

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'close') {
      void session.release().finally(() => port.close());
      return;
    }
    runBatch(msg.input).then(
      (r) => post({ type: 'result', id: msg.id, ...r }, [r.data, r.tokens]),
      (err: unknown) => post({ type: 'error', id: msg.id, message: message(err) }),
    );
  });
}

void main();
