// The request-field policy on its own (router/http/request-fields.ts): extras follow the engine
// kinds serving the model, operator lists add to (or replace) the defaults, opt-in fields keep
// their bounds, an unknown context changes nothing, media domain matching is exact.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../common/errors.ts';
import {
  RequestFields,
  requestFieldsConfigSchema,
  type ModelContext,
  type RequestFieldsConfigInput,
} from '../../router/http/request-fields.ts';

const ctx = (kinds: string[], maxContext?: number): ModelContext => ({ engineKinds: new Set(kinds), maxContext });
const policy = (cfg: RequestFieldsConfigInput, c: ModelContext) => new RequestFields(requestFieldsConfigSchema.parse(cfg), () => c);
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: 5,
  ...extra,
});
const refusal = (fn: () => void): ApiError => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.status, 400);
    return err;
  }
  assert.fail('expected a 400');
};

describe('request-field policy', () => {
  it('extras follow the engine kinds that serve the model (all of them must take it)', () => {
    policy({}, ctx(['vllm'])).check('CHAT_COMPLETIONS', chat({ top_k: 3 }), 'm', 2);
    assert.equal(refusal(() => policy({}, ctx(['tgi'])).check('CHAT_COMPLETIONS', chat({ top_k: 3 }), 'm', 2)).param, 'top_k');
    assert.equal(
      refusal(() => policy({}, ctx(['vllm', 'tgi'])).check('CHAT_COMPLETIONS', chat({ top_k: 3 }), 'm', 2)).code,
      'unknown_parameter',
    );
    // No node reports the model: only what every kind takes.
    policy({}, ctx([])).check('COMPLETIONS', { model: 'm', prompt: 'x', repetition_penalty: 1.1 }, 'm', 1);
    assert.equal(refusal(() => policy({}, ctx([])).check('CHAT_COMPLETIONS', chat({ min_p: 0.1 }), 'm', 2)).param, 'min_p');
  });

  it('operator lists add opt-in extras, which keep their bounds; defaultExtras: false drops the defaults', () => {
    const p = policy({ extras: { vllm: ['ignore_eos', 'best_of', 'x_custom'] }, maxBestOf: 2 }, ctx(['vllm']));
    p.check('CHAT_COMPLETIONS', chat({ ignore_eos: true, best_of: 2, x_custom: { any: 'json' }, top_k: 1 }), 'm', 2);
    assert.equal(refusal(() => p.check('CHAT_COMPLETIONS', chat({ ignore_eos: true, max_tokens: undefined }), 'm', 2)).param, 'ignore_eos');
    assert.equal(refusal(() => p.check('CHAT_COMPLETIONS', chat({ best_of: 3 }), 'm', 2)).param, 'best_of');
    assert.equal(
      refusal(() => p.check('CHAT_COMPLETIONS', chat({ ignore_eos: 'yes' }), 'm', 2)).message,
      'ignore_eos: expected a boolean, got string',
    );
    const bare = policy({ defaultExtras: false, extras: { vllm: ['min_p'] } }, ctx(['vllm']));
    bare.check('CHAT_COMPLETIONS', chat({ min_p: 0.2 }), 'm', 2);
    assert.equal(refusal(() => bare.check('CHAT_COMPLETIONS', chat({ top_k: 1 }), 'm', 2)).param, 'top_k');
    assert.throws(() => requestFieldsConfigSchema.parse({ extras: { vllm: ['__proto__'] } }));
    // chat_template_kwargs passes by default, but not as a way to set the template itself.
    p.check('CHAT_COMPLETIONS', chat({ chat_template_kwargs: { enable_thinking: false } }), 'm', 2);
    const tpl = refusal(() => p.check('CHAT_COMPLETIONS', chat({ chat_template_kwargs: { chat_template: '{{ 7*7 }}' } }), 'm', 2));
    assert.equal(tpl.param, 'chat_template_kwargs.chat_template');
    assert.throws(() => requestFieldsConfigSchema.parse({ extras: { sglang: ['x'] } }));
  });

  it('context: refused only when known; the limit is prompt + max tokens', () => {
    policy({}, ctx(['vllm'])).check('CHAT_COMPLETIONS', chat({ max_tokens: 10_000_000 }), 'm', 9_999_999);
    const p = policy({}, ctx(['vllm'], 100));
    p.check('CHAT_COMPLETIONS', chat({ max_tokens: 90 }), 'm', 10);
    p.check('CHAT_COMPLETIONS', chat({ max_tokens: undefined }), 'm', 99);
    const over = refusal(() => p.check('CHAT_COMPLETIONS', chat({ max_tokens: 91 }), 'm', 10));
    assert.equal(over.code, 'context_length_exceeded');
    assert.equal(over.param, 'messages');
    assert.equal(
      over.message,
      "This model's maximum context length is 100 tokens. However, you requested 101 tokens (10 in the messages, 91 in the completion). Please reduce the length of the messages or completion.",
    );
    assert.equal(refusal(() => p.check('COMPLETIONS', { model: 'm', prompt: 'x', max_tokens: 500 }, 'm', 1)).param, 'max_tokens');
    assert.equal(refusal(() => p.check('COMPLETIONS', { model: 'm', prompt: 'x' }, 'm', 100)).param, 'prompt');
  });

  it('media domains: exact host or *. subdomains, http(s) only', () => {
    const p = policy({ mediaDomains: ['img.example.com', '*.cdn.example.org'] }, ctx(['vllm']));
    const img = (url: string) => () =>
      p.check('CHAT_COMPLETIONS', chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] }), 'm', 2);
    for (const ok of [
      'https://img.example.com/a.png',
      'http://IMG.example.com/a',
      'https://x.y.cdn.example.org/a',
      'DATA:image/png;base64,AA',
    ])
      img(ok)();
    for (const bad of [
      'https://cdn.example.org/a',
      'https://xcdn.example.org/a',
      'https://img.example.com.evil/a',
      'ftp://img.example.com/a',
      'not a url',
      'https://img.example.com@169.254.169.254/',
    ]) {
      const e = refusal(img(bad));
      assert.equal(e.code, 'invalid_media_url', bad);
      assert.equal(e.param, 'messages[0].content[0].image_url.url', bad);
    }
    // A URL key on a part of another type is checked too (engines differ in which key they read).
    const hidden = refusal(() =>
      p.check(
        'CHAT_COMPLETIONS',
        chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x', image_url: { url: 'http://169.254.169.254/' } }] }] }),
        'm',
        2,
      ),
    );
    assert.equal(hidden.param, 'messages[0].content[0].image_url.url');
    const s = refusal(() =>
      p.check(
        'CHAT_COMPLETIONS',
        chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'http://10.0.0.1/' }] }] }),
        'm',
        2,
      ),
    );
    assert.equal(s.param, 'messages[0].content[0].image_url');
  });
});
