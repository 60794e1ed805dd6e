import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IoGate } from '../../dataplane/engine/io-gate.js';
import { RangeLock } from '../../dataplane/engine/range-lock.js';

describe('RangeLock', () => {
  it('lets disjoint ranges through and blocks overlapping ones until release', async () => {
    const lock = new RangeLock();
    const a = lock.tryAcquire(0, 4096)!;
    expect(lock.tryAcquire(4096, 8192)).not.toBeNull();
    expect(lock.tryAcquire(4095, 4097)).toBeNull();
    let got = false;
    const waiting = lock.acquire(0, 10).then((h) => {
      got = true;
      return h;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toBe(false);
    a.release();
    const b = await waiting;
    expect(got).toBe(true);
    b.release();
  });

  it('never holds two overlapping ranges at once (random schedules)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(64), fc.integer({ min: 1, max: 16 }), fc.nat(3)), { minLength: 1, maxLength: 40 }),
        async (ops) => {
          const lock = new RangeLock();
          const held: { start: number; end: number }[] = [];
          await Promise.all(
            ops.map(async ([start, len, delay]) => {
              const h = await lock.acquire(start, start + len);
              for (const o of held) expect(o.start < h.end && h.start < o.end).toBe(false);
              held.push(h);
              await new Promise((r) => setTimeout(r, delay));
              held.splice(held.indexOf(h), 1);
              h.release();
            }),
          );
          expect(lock.size).toBe(0);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('IoGate', () => {
  it('runs an exclusive section only after in-flight I/O drains, and holds new I/O until it ends', async () => {
    const gate = new IoGate();
    const events: string[] = [];
    expect(gate.enter()).toBeUndefined();
    const section = gate.exclusive(async () => {
      events.push('exclusive');
      await new Promise((r) => setTimeout(r, 5));
      events.push('exclusive-end');
    });
    const late = Promise.resolve(gate.enter()).then(() => {
      events.push('late-io');
      gate.exit();
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(events).toEqual([]);
    events.push('io-done');
    gate.exit();
    await Promise.all([section, late]);
    expect(events).toEqual(['io-done', 'exclusive', 'exclusive-end', 'late-io']);
  });
});
