import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import {
  combineTensor,
  dispatchMask,
  processedFraction,
  topExpertsPerItem,
  topItemsPerExpert,
  topKIndices,
} from '../../src/vmoe/routing.js';

// docs/spec/routing.md §8 golden vectors (from the reference vmoe/moe_test.py): S=3, E=3, K=2, C=2.
const GOLDEN_GATES = [
  [0.4, 0, 0.2],
  [0.5, 0.1, 0.4],
  [0.3, 0.2, 0.6],
];
const VANILLA_PAIRS = [
  [
    [0, 0],
    [2, 1],
  ],
  [
    [0, 1],
    [2, 2],
  ],
  [
    [2, 0],
    [0, 2],
  ],
];
const BPR_PAIRS = [
  [
    [0, 1],
    [2, 2],
  ],
  [
    [0, 0],
    [2, 1],
  ],
  [
    [2, 0],
    [0, 2],
  ],
];
const VANILLA_COMBINE = [
  [
    [0.4, 0],
    [0, 0],
    [0, 0.2],
  ],
  [
    [0, 0.5],
    [0, 0],
    [0, 0],
  ],
  [
    [0, 0],
    [0, 0],
    [0.6, 0],
  ],
];
const BPR_COMBINE = [
  [
    [0, 0.4],
    [0, 0],
    [0, 0],
  ],
  [
    [0.5, 0],
    [0, 0],
    [0, 0.4],
  ],
  [
    [0, 0],
    [0, 0],
    [0.6, 0],
  ],
];

/** Random softmax rows (S, E); `levels` > 0 quantises logits so gate ties are common. */
function randomGates(rng: Rng, S: number, E: number, levels = 0): number[][] {
  return Array.from({ length: S }, () => {
    const logits = Array.from({ length: E }, () => (levels > 0 ? rng.int(levels) : 2 * rng.normal()));
    const m = Math.max(...logits);
    const ex = logits.map((l) => Math.exp(l - m));
    const z = ex.reduce((a, b) => a + b, 0);
    return ex.map((v) => v / z);
  });
}

/** Index of the largest value, lowest index on ties (written independently of the router). */
function argmax(row: number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

describe('topExpertsPerItem: spec golden vectors', () => {
  for (const [name, batchPriority, pairs, dense] of [
    ['vanilla', false, VANILLA_PAIRS, VANILLA_COMBINE],
    ['BPR', true, BPR_PAIRS, BPR_COMBINE],
  ] as const) {
    it(`${name}: expert/slot, kept, combine and the (S,E,C) tensors`, () => {
      const r = topExpertsPerItem(GOLDEN_GATES, { k: 2, capacity: 2, batchPriority });
      expect(r.capacity).toBe(2);
      expect(r.expert).toEqual(pairs.map((tok) => tok.map(([e]) => e)));
      expect(r.slot).toEqual(pairs.map((tok) => tok.map(([, s]) => s)));
      expect(r.kept).toEqual(pairs.map((tok) => tok.map(([, s]) => s! < 2)));
      expect(r.combine).toEqual(pairs.map((tok, t) => tok.map(([e, s]) => (s! < 2 ? GOLDEN_GATES[t]![e!]! : 0))));
      expect(combineTensor(r, 3)).toEqual(dense);
      expect(dispatchMask(r, 3)).toEqual(dense.map((tok) => tok.map((ex) => ex.map((v) => v !== 0))));
      expect(processedFraction(r)).toBe(4 / 6);
    });
  }

  it('vanilla drops token 1 and token 2 second choices; BPR drops token 0 second choice', () => {
    const v = topExpertsPerItem(GOLDEN_GATES, { k: 2, capacity: 2 });
    expect(v.kept).toEqual([
      [true, true],
      [true, false],
      [true, false],
    ]);
    const b = topExpertsPerItem(GOLDEN_GATES, { k: 2, capacity: 2, batchPriority: true });
    expect(b.kept).toEqual([
      [true, false],
      [true, true],
      [true, false],
    ]);
  });
});

describe('topExpertsPerItem: rules', () => {
  it('combine is the selected gate, not renormalised (K=1 → p_top1)', () => {
    const r = topExpertsPerItem([[0.7, 0.2, 0.1]], { k: 1, capacity: 1 });
    expect(r.combine).toEqual([[0.7]]);
    const r2 = topExpertsPerItem([[0.7, 0.2, 0.1]], { k: 2, capacity: 1 });
    expect(r2.combine).toEqual([[0.7, 0.2]]);
  });

  it('top-k ties within a token go to the lower expert index', () => {
    expect(topKIndices([0.3, 0.3, 0.4], 2)).toEqual([2, 0]);
    expect(topKIndices([0.25, 0.25, 0.25, 0.25], 3)).toEqual([0, 1, 2]);
    const r = topExpertsPerItem([[0.5, 0.5]], { k: 1, capacity: 1 });
    expect(r.expert).toEqual([[0]]);
  });

  it('BPR ties in the top-1 gate keep position order', () => {
    // All three tokens pick expert 0 with the same gate; C=1 keeps the earliest.
    const gates = [
      [0.6, 0.4],
      [0.6, 0.4],
      [0.6, 0.4],
    ];
    const r = topExpertsPerItem(gates, { k: 1, capacity: 1, batchPriority: true });
    expect(r.slot).toEqual([[0], [1], [2]]);
  });

  it('capacity from a factor uses expertCapacity (S=3,K=2,c=1,E=3 → ceil(2)=2 → 4)', () => {
    expect(topExpertsPerItem(GOLDEN_GATES, { k: 2, capacityFactor: 1 }).capacity).toBe(4);
    expect(topExpertsPerItem(GOLDEN_GATES, { k: 2, capacityFactor: 1, rounding: 'none' }).capacity).toBe(2);
  });

  it('capacity ≥ S never drops (random gates, vanilla and BPR)', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 60; trial++) {
      const S = 1 + rng.int(40);
      const E = 1 + rng.int(8);
      const K = 1 + rng.int(E);
      const gates = randomGates(rng, S, E, trial % 2 === 0 ? 3 : 0);
      const batchPriority = trial % 3 === 0;
      const byCapacity = topExpertsPerItem(gates, { k: K, capacity: S + rng.int(3), batchPriority });
      // c = E/K makes S·K·c/E = S exactly
      const byFactor = topExpertsPerItem(gates, { k: K, capacityFactor: E / K, rounding: 'none', batchPriority });
      for (const r of [byCapacity, byFactor]) {
        expect(r.kept.flat().every(Boolean)).toBe(true);
        expect(processedFraction(r)).toBe(1);
        r.combine.forEach((row, s) => row.forEach((g, j) => expect(g).toBe(gates[s]![r.expert[s]![j]!])));
      }
    }
  });

  it('slots per expert are 0,1,2,… with no gaps or repeats, and kept ⇔ slot < C', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 40; trial++) {
      const S = 1 + rng.int(30);
      const E = 1 + rng.int(6);
      const K = 1 + rng.int(E);
      const C = 1 + rng.int(S);
      const r = topExpertsPerItem(randomGates(rng, S, E, trial % 2 ? 4 : 0), {
        k: K,
        capacity: C,
        batchPriority: trial % 2 === 0,
      });
      const slotsPerExpert: number[][] = Array.from({ length: E }, () => []);
      r.expert.forEach((row, s) =>
        row.forEach((e, j) => {
          slotsPerExpert[e]!.push(r.slot[s]![j]!);
          expect(r.kept[s]![j]).toBe(r.slot[s]![j]! < C);
          if (!r.kept[s]![j]) expect(r.combine[s]![j]).toBe(0);
        }),
      );
      for (const slots of slotsPerExpert) {
        expect([...slots].sort((a, b) => a - b)).toEqual(slots.map((_, i) => i));
      }
      // a token never picks the same expert twice
      for (const row of r.expert) expect(new Set(row).size).toBe(K);
    }
  });

  it('K-major: no later choice is kept for an expert after an earlier choice to it was dropped', () => {
    const rng = new Rng(23);
    for (let trial = 0; trial < 40; trial++) {
      const S = 4 + rng.int(30);
      const E = 2 + rng.int(5);
      const K = 2 + rng.int(E - 1);
      const C = 1 + rng.int(Math.max(1, Math.floor(S / 2)));
      const r = topExpertsPerItem(randomGates(rng, S, E), { k: K, capacity: C, batchPriority: trial % 2 === 0 });
      for (let e = 0; e < E; e++) {
        for (let j = 0; j < K; j++) {
          const droppedAtJ = r.expert.some((row, s) => row[j] === e && !r.kept[s]![j]);
          if (!droppedAtJ) continue;
          for (let later = j + 1; later < K; later++) {
            expect(r.expert.some((row, s) => row[later] === e && r.kept[s]![later])).toBe(false);
          }
        }
      }
      // every kept slot of a later choice is above every slot of an earlier choice for that expert
      for (let e = 0; e < E; e++) {
        for (let j = 1; j < K; j++) {
          const earlier = r.expert.flatMap((row, s) => (row[j - 1] === e ? [r.slot[s]![j - 1]!] : []));
          const later = r.expert.flatMap((row, s) => (row[j] === e ? [r.slot[s]![j]!] : []));
          if (earlier.length && later.length) expect(Math.min(...later)).toBeGreaterThan(Math.max(...earlier));
        }
      }
    }
  });

  it('K=1 with small C: BPR keeps per expert the top-C tokens by max gate (ties by position); vanilla the first C', () => {
    const rng = new Rng(99);
    for (let trial = 0; trial < 50; trial++) {
      const S = 5 + rng.int(40);
      const E = 1 + rng.int(5);
      const C = 1 + rng.int(4);
      const gates = randomGates(rng, S, E, trial % 2 ? 3 : 0); // quantised logits → many ties
      const bpr = topExpertsPerItem(gates, { k: 1, capacity: C, batchPriority: true });
      const vanilla = topExpertsPerItem(gates, { k: 1, capacity: C });
      for (let e = 0; e < E; e++) {
        const mine = gates.map((_, s) => s).filter((s) => argmax(gates[s]!) === e);
        const byGate = [...mine].sort((a, b) => {
          const ga = gates[a]![e]!,
            gb = gates[b]![e]!;
          return ga !== gb ? gb - ga : a - b;
        });
        const keptBpr = mine.filter((s) => bpr.kept[s]![0]);
        const keptVanilla = mine.filter((s) => vanilla.kept[s]![0]);
        expect(keptBpr).toEqual(byGate.slice(0, C).sort((a, b) => a - b));
        expect(keptVanilla).toEqual(mine.slice(0, C));
      }
    }
  });

  it('dense combine tensor sums to the kept gates per token', () => {
    const rng = new Rng(3);
    const gates = randomGates(rng, 20, 4);
    const r = topExpertsPerItem(gates, { k: 2, capacity: 6, batchPriority: true });
    const dense = combineTensor(r, 4);
    expect(dense.length).toBe(20);
    expect(dense[0]!.length).toBe(4);
    expect(dense[0]![0]!.length).toBe(6);
    dense.forEach((tok, s) => {
      const total = tok.flat().reduce((a, b) => a + b, 0);
      const expected = r.expert[s]!.reduce((a, e, j) => a + (r.kept[s]![j] ? gates[s]![e]! : 0), 0);
      expect(total).toBeCloseTo(expected, 12);
    });
    expect(() => combineTensor(r, 2)).toThrow(/numExperts is 2/);
  });

  it('rejects bad input with clear errors', () => {
    expect(() => topExpertsPerItem([], { k: 1, capacity: 1 })).toThrow(/gates must be a non-empty/);
    expect(() => topExpertsPerItem([[0.5, 0.5], [1]], { k: 1, capacity: 1 })).toThrow(/ragged: row 1 has 1/);
    expect(() => topExpertsPerItem([[0.5, NaN]], { k: 1, capacity: 1 })).toThrow(/gates\[0\]\[1\] must be a finite/);
    expect(() => topExpertsPerItem([[0.5, Infinity]], { k: 1, capacity: 1 })).toThrow(/finite/);
    expect(() => topExpertsPerItem([[0.5, 0.5]], { k: 3, capacity: 1 })).toThrow(/k must be an integer in \[1, 2\]/);
    expect(() => topExpertsPerItem([[0.5, 0.5]], { k: 0, capacity: 1 })).toThrow(/k must/);
    expect(() => topExpertsPerItem([[0.5, 0.5]], { k: 1 })).toThrow(/exactly one of capacity/);
    expect(() => topExpertsPerItem([[0.5, 0.5]], { k: 1, capacity: 1, capacityFactor: 1 })).toThrow(/exactly one/);
  });
});

describe('topItemsPerExpert (expert choice)', () => {
  it('hand case on the golden gates, C=2', () => {
    const r = topItemsPerExpert(GOLDEN_GATES, { capacity: 2 });
    expect(r.capacity).toBe(2);
    // columns: e0 [.4,.5,.3] → tokens 1,0; e1 [0,.1,.2] → 2,1; e2 [.2,.4,.6] → 2,1
    expect(r.token).toEqual([
      [1, 0],
      [2, 1],
      [2, 1],
    ]);
    expect(r.combine).toEqual([
      [0.5, 0.4],
      [0.2, 0.1],
      [0.6, 0.4],
    ]);
  });

  it('ties go to the lower token index; capacity from a factor is ceil(S·c/E); capped at S', () => {
    const gates = [
      [0.5, 0.5],
      [0.5, 0.5],
      [0.9, 0.1],
    ];
    // S=3, E=2, c=1 → ceil(1.5) = 2
    const r = topItemsPerExpert(gates, { capacityFactor: 1 });
    expect(r.capacity).toBe(2);
    expect(r.token).toEqual([
      [2, 0],
      [0, 1],
    ]);
    const all = topItemsPerExpert(gates, { capacity: 10 });
    expect(all.capacity).toBe(3);
    expect(all.token).toEqual([
      [2, 0, 1],
      [0, 1, 2],
    ]);
    expect(() => topItemsPerExpert(gates, {})).toThrow(/exactly one/);
    expect(() => topItemsPerExpert(gates, { capacity: 0 })).toThrow(/capacity must be an integer ≥ 1/);
  });

  it('random gates: each expert holds its C largest gates in descending order', () => {
    const rng = new Rng(8);
    for (let trial = 0; trial < 20; trial++) {
      const S = 2 + rng.int(30);
      const E = 1 + rng.int(6);
      const gates = randomGates(rng, S, E);
      const r = topItemsPerExpert(gates, { capacityFactor: 0.5 + rng.uniform() * 2 });
      expect(r.capacity).toBeLessThanOrEqual(S);
      for (let e = 0; e < E; e++) {
        const column = gates.map((row) => row[e]!);
        const sortedDesc = [...column].sort((a, b) => b - a);
        expect(r.combine[e]).toEqual(sortedDesc.slice(0, r.capacity));
        expect(r.token[e]!.map((s) => column[s])).toEqual(r.combine[e]);
        expect(new Set(r.token[e]).size).toBe(r.capacity);
      }
    }
  });
});
