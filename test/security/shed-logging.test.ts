// Issue 17, item 9: load-shedding 503s (admission refusals, `overloaded` errors, shutting_down) were
// logged as errors with stacks, so a busy router buried its real faults in noise (and spent CPU on
// stacks). Now they are logged at info without a stack; a real fault still logs at error with the error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createHttpServer } from '../../common/http.ts';
import { errors } from '../../common/errors.ts';
import { AdmissionRefusal } from '../../router/admission/refusal.ts';

interface Line {
  level: number;
  reqId?: string;
  msg: string;
  err?: { stack?: string; message?: string };
  [k: string]: unknown;
}

describe('logging of load shedding vs real faults (common/http.ts error handler)', () => {
  let app: FastifyInstance;
  let url: string;
  const lines: Line[] = [];
  const failures: Record<string, () => Error> = {
    'lane-refusal': () => new AdmissionRefusal('standard', 'queue_timeout', 'The standard lane is full; retry shortly.', 2),
    'sheddable-refusal': () => new AdmissionRefusal('sheddable', 'shed', 'Shed.', 1),
    overloaded: () => errors.overloaded('No GPU node can serve model m right now.', 1, 'no_ready_node'),
    'shutting-down': () => errors.overloaded('The server is shutting down; retry the request.', 1, 'shutting_down'),
    fault: () => new Error('boom: a real bug'),
    upstream: () => errors.upstream('node gpu-1 failed: engine 500'),
  };

  before(async () => {
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
    app = createHttpServer({ logger });
    for (const [name, make] of Object.entries(failures)) {
      app.get(`/${name}`, async () => {
        throw make();
      });
    }
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app?.close();
  });

  const hit = async (name: string, id: string) => {
    const res = await fetch(`${url}/${name}`, { headers: { 'x-request-id': id } });
    const body = (await res.json()) as { error: { code: string } };
    return { res, body, logged: lines.filter((l) => l.reqId === id) };
  };

  for (const name of ['lane-refusal', 'sheddable-refusal', 'overloaded', 'shutting-down']) {
    it(`${name}: answered in OpenAI shape with Retry-After, logged below error with no stack`, async () => {
      const { res, body, logged } = await hit(name, `shed-${name}`);
      assert.ok(res.status === 503 || res.status === 429, `status ${res.status}`);
      assert.ok(res.headers.get('retry-after'));
      assert.equal(typeof body.error.code, 'string');
      assert.ok(
        logged.every((l) => l.level < 50),
        `logged at ${logged.map((l) => l.level).join(',')}`,
      );
      assert.ok(!JSON.stringify(logged).includes('"stack"'), 'no stack');
      if (res.status === 503) {
        const line = logged.find((l) => l.code === body.error.code);
        assert.ok(line && line.level >= 30, 'a 503 refusal is still noted, with its code');
      }
    });
  }

  for (const name of ['fault', 'upstream']) {
    it(`${name}: a real 5xx still logs at error with the error and its stack`, async () => {
      const { res, logged } = await hit(name, `fault-${name}`);
      assert.ok(res.status >= 500 && res.status !== 503, `status ${res.status}`);
      const line = logged.find((l) => l.level === 50);
      assert.ok(line, 'an error line');
      assert.ok(line.err?.stack?.includes(name === 'fault' ? 'boom: a real bug' : 'engine 500'), 'with the error and its stack');
    });
  }
});
