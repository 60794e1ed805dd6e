// Reads rotate over the RW replicas by event-loop turn: one turn's reads stay on one replica (they
// leave in one write), the next turn moves on, and a client reading one request at a time still
// spreads its reads over every replica.
import { describe, expect, it } from 'vitest';
import { ReadRotation } from '../../dataplane/engine/read-rotation.js';

/** A replica whose "requests queued this turn" flag the test sets, as a send would. */
function replica(name: string) {
  return { name, data: { queuedThisTurn: false } };
}

describe('ReadRotation', () => {
  it('keeps a turn on one replica and moves to the next replica each turn', () => {
    const rs = [replica('a'), replica('b'), replica('c')];
    const rot = new ReadRotation();
    const turns: string[][] = [];
    for (let turn = 0; turn < 6; turn++) {
      const seen: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = rot.pick(rs);
        r.data.queuedThisTurn = true; // the read was queued to it
        seen.push(r.name);
      }
      for (const r of rs) r.data.queuedThisTurn = false; // the turn's writes left
      turns.push(seen);
    }
    expect(turns.map((t) => new Set(t).size)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(turns.map((t) => t[0])).toEqual(['b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('one read per turn goes to every replica in turn', () => {
    const rs = [replica('a'), replica('b')];
    const rot = new ReadRotation();
    expect([1, 2, 3, 4].map(() => rot.pick(rs).name)).toEqual(['b', 'a', 'b', 'a']);
  });

  it('a turn whose replica already has writes queued reads from it; a shrunk set stays in range', () => {
    const rs = [replica('a'), replica('b'), replica('c')];
    const rot = new ReadRotation();
    expect(rot.pick(rs).name).toBe('b');
    expect(rot.pick(rs).name).toBe('c');
    rs[2]!.data.queuedThisTurn = true; // a write of this turn went to every replica
    expect(rot.pick(rs).name).toBe('c');
    const left = [rs[0]!];
    left[0]!.data.queuedThisTurn = false;
    expect(rot.pick(left).name).toBe('a');
    expect(rot.pick(left).name).toBe('a');
  });
});
