/** The checker's probe schedule: items come out in due order whatever order they went in. */
import { DueQueue } from '../../agent/health/due-queue.js';

it('pops in due order, interleaved pushes included', () => {
  const queue = new DueQueue<{ dueAtMs: number; name: string }>();
  const dues = [50, 10, 40, 10, 30, 70, 20, 60, 0, 45];
  dues.forEach((dueAtMs, i) => queue.push({ dueAtMs, name: `t${i}` }));
  const out: number[] = [];
  out.push(queue.pop()!.dueAtMs, queue.pop()!.dueAtMs);
  queue.push({ dueAtMs: 5, name: 'late' });
  queue.push({ dueAtMs: 100, name: 'last' });
  while (queue.size > 0) out.push(queue.pop()!.dueAtMs);
  expect(out).toEqual([0, 10, 5, 10, 20, 30, 40, 45, 50, 60, 70, 100]);
  expect(queue.pop()).toBeUndefined();
  expect(queue.peek()).toBeUndefined();
});
