import { it } from 'node:test';
import assert from 'node:assert/strict';
import { FairQueue } from '../../../router/admission/fair-queue.ts';

const e = (tenant: string, t: number, deadline = 1e9) => ({ tenant, enqueuedAt: t, deadline, id: `${tenant}${t}` });
it("tenants take turns: one tenant's burst does not starve another", () => {
  const q = new FairQueue<ReturnType<typeof e>>(100);
  for (let i = 0; i < 10; i++) q.push(e('big', i));
  q.push(e('small', 20));
  const order = [1, 2, 3].map(() => q.shift()!.id);
  assert.deepEqual(order, ['big0', 'small20', 'big1']);
});
it('is bounded, expires by deadline, removes and finds the youngest', () => {
  const q = new FairQueue<ReturnType<typeof e>>(3);
  assert.ok(q.push(e('a', 1, 10)));
  assert.ok(q.push(e('b', 2, 50)));
  assert.ok(q.push(e('a', 3, 50)));
  assert.equal(q.push(e('c', 4)), false);
  assert.equal(q.youngest()!.id, 'a3');
  assert.deepEqual(
    q.expire(20).map((x) => x.id),
    ['a1'],
  );
  assert.equal(q.size, 2);
  assert.equal(q.peek()!.id, 'a3'); // tenant a keeps its turn
});
