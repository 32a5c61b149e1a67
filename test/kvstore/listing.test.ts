import { planListing } from '../../lib/kvstore/listing.js';
import { RelistLimiter, relistDelayMs } from '../../lib/kvstore/relist-limiter.js';

const raws = (entries: Record<string, string>): Map<string, Buffer> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));
const known = (entries: Record<string, string>): Map<string, { raw: Buffer }> =>
  new Map([...raws(entries)].map(([k, raw]) => [k, { raw }]));

interface PlanCase {
  name: string;
  before: Record<string, string>;
  listed: Record<string, string>;
  canary: boolean;
  plan: { upserts: string[]; deletes: string[]; held: string[] };
}

describe('planListing: what a listing may change', () => {
  it.each<PlanCase>([
    {
      name: 'first listing with the canary: everything is new',
      before: {},
      listed: { a: '1', b: '1' },
      canary: true,
      plan: { upserts: ['a', 'b'], deletes: [], held: [] },
    },
    {
      name: 'first listing without the canary: upserts still flow',
      before: {},
      listed: { a: '1' },
      canary: false,
      plan: { upserts: ['a'], deletes: [], held: [] },
    },
    {
      name: 'relist with the canary: unchanged skipped, changed upserted, gone deleted',
      before: { a: '1', b: '1', c: '1' },
      listed: { a: '1', b: '2', d: '1' },
      canary: true,
      plan: { upserts: ['b', 'd'], deletes: ['c'], held: [] },
    },
    {
      name: 'relist without the canary: gone keys are held, not deleted',
      before: { a: '1', b: '1', c: '1' },
      listed: { a: '1', b: '2', d: '1' },
      canary: false,
      plan: { upserts: ['b', 'd'], deletes: [], held: ['c'] },
    },
    {
      name: 'a peer that restarted empty: nothing listed, all held',
      before: { a: '1', b: '1' },
      listed: {},
      canary: false,
      plan: { upserts: [], deletes: [], held: ['a', 'b'] },
    },
    {
      name: 'the peer repopulated part and wrote its canary: only the rest goes',
      before: { a: '1', b: '1', c: '1' },
      listed: { a: '1', c: '2' },
      canary: true,
      plan: { upserts: ['c'], deletes: ['b'], held: [] },
    },
    {
      name: 'an empty listing with the canary is authoritative: everything goes',
      before: { a: '1' },
      listed: {},
      canary: true,
      plan: { upserts: [], deletes: ['a'], held: [] },
    },
  ])('$name', ({ before, listed, canary, plan }) => {
    expect(planListing(known(before), raws(listed), canary)).toEqual(plan);
  });
});

describe('relistDelayMs: exponential, capped, jittered into the upper half', () => {
  const steps = { minTimeoutMs: 100, maxTimeoutMs: 1_000 };
  it.each([
    { streak: 1, random: 0, delay: 50 },
    { streak: 1, random: 0.999, delay: 100 },
    { streak: 2, random: 0, delay: 100 },
    { streak: 3, random: 0.5, delay: 300 },
    { streak: 4, random: 0, delay: 400 },
    { streak: 5, random: 0, delay: 500 }, // 1600 capped at 1000
    { streak: 5, random: 0.999, delay: 1_000 },
    { streak: 500, random: 0, delay: 500 }, // no overflow to Infinity/NaN
  ])('streak $streak, random $random → $delay ms', ({ streak, random, delay }) => {
    expect(relistDelayMs(streak, steps, random)).toBe(delay);
  });
});

describe('RelistSchedule: one streak per store, ended by a watch that lasted', () => {
  it('doubles while watches break at once, restarts after a long watch, counts in the limiter', async () => {
    let now = 0;
    const limiter = new RelistLimiter({ resetAfterMs: 10_000, now: () => now, random: () => 0 });
    const schedule = limiter.schedule({ minTimeoutMs: 2, maxTimeoutMs: 8 });
    const other = limiter.schedule({ minTimeoutMs: 2, maxTimeoutMs: 8 });
    const signal = new AbortController().signal;
    for (let i = 0; i < 4; i++) {
      await schedule.next(signal);
      schedule.watching();
      now += 5; // broke right away
    }
    expect(schedule.consecutive).toBe(4);
    expect(limiter.counters).toEqual({ granted: 4, delayedMs: 1 + 2 + 4 + 4 });

    now += 10_000; // this watch lasted
    await schedule.next(signal);
    expect(schedule.consecutive).toBe(1);

    await other.next(signal); // another store starts its own streak
    expect(other.consecutive).toBe(1);
    expect(limiter.counters).toEqual({ granted: 6, delayedMs: 11 + 1 + 1 });
  });

  it('a failed listing (no watch) continues the streak, and a stop aborts the wait', async () => {
    let now = 0;
    const limiter = new RelistLimiter({ now: () => now, random: () => 0 });
    const quick = limiter.schedule({ minTimeoutMs: 2, maxTimeoutMs: 8 });
    await quick.next(new AbortController().signal);
    now += 60_000; // no watching() in between: the listing failed, however long it took
    await quick.next(new AbortController().signal);
    expect(quick.consecutive).toBe(2);

    const slow = limiter.schedule({ minTimeoutMs: 600_000, maxTimeoutMs: 600_000 });
    const stop = new AbortController();
    const waiting = slow.next(stop.signal);
    stop.abort(new Error('stopped'));
    await expect(waiting).rejects.toThrow();
  });
});
