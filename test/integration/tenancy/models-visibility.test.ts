// GET /v1/models and /v1/models/{model} on a stack with keys required: a key limited by its
// tenant's `allowedModels` lists and finds only those models (404 model_not_found for the others,
// as for a model that does not exist); an unlimited key sees all of them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { tokenSha256 } from '../../../common/credentials.ts';

const ADMIN_TOKEN = 'models-visibility-admin-' + 'k'.repeat(32);
const ALIAS = 'chat-default';

describe('model visibility follows allowedModels', () => {
  let stack: Stack;
  let dir: string;
  const keys = new Map<string, string>();
  const client = (name: string) => new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: keys.get(name)!, maxRetries: 0 });

  const admin = async (path: string, body: unknown) => {
    const res = await fetch(stack.controlPlane!.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${path}: ${res.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icp-models-vis-'));
    const tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, ADMIN_TOKEN);
    stack = await startStack({
      sims: [{ id: 'sim-a' }],
      agents: [{ id: 'gpu-a', sim: 'sim-a' }],
      controlPlane: { adminTokenFile: tokenFile },
      router: { auth: { mode: 'required' }, aliases: { [ALIAS]: DEFAULT_MODEL } },
      routerEnv: { ICP_ADMIN_TOKEN_SHA256: tokenSha256(ADMIN_TOKEN) },
    });
    for (const [name, policy] of [
      ['open', {}],
      ['limited', { allowedModels: [ALIAS] }],
    ] as const) {
      const t = await admin('/v1/admin/tenants', { name, policy });
      const k = await admin(`/v1/admin/tenants/${t.id as string}/keys`, { name: `${name}-key` });
      keys.set(name, k.key as string);
    }
    // The router has both keys and the node's model once the limited key sees the alias.
    await waitFor(
      async () =>
        (await client('open')
          .models.list()
          .then(
            (p) => p.data.length,
            () => 0,
          )) === 2 &&
        (await client('limited')
          .models.list()
          .then(
            (p) => p.data.length,
            () => 0,
          )) === 1,
      30_000,
      100,
    );
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('an unlimited key lists and finds every model', async () => {
    const ids = (await client('open').models.list()).data.map((m) => m.id).sort();
    assert.deepEqual(ids, [ALIAS, DEFAULT_MODEL]);
    for (const id of ids) assert.equal((await client('open').models.retrieve(id)).id, id);
  });

  it('a limited key lists and finds only its models; the others are 404 model_not_found', async () => {
    assert.deepEqual(
      (await client('limited').models.list()).data.map((m) => m.id),
      [ALIAS],
    );
    assert.equal((await client('limited').models.retrieve(ALIAS)).id, ALIAS);
    const err = await client('limited')
      .models.retrieve(DEFAULT_MODEL)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof OpenAI.NotFoundError, String(err));
    assert.equal(err.code, 'model_not_found');
  });
});
