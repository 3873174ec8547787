/**
 * Dispatch plans: which token goes to which expert-buffer row, computed on the
 * host from the gate values. Typed arrays over all groups at once — the model's
 * fast path. The pure per-group reference (routing.ts) states the same rules on
 * nested arrays; tests hold the two equal.
 *
 * Expert buffer layout: expert e owns rows [e·R, (e+1)·R), R = Σ_g C_g; group g's
 * slots start at offset_g = Σ_{g'<g} C_g'. A row holds token t as t+1, or 0 if empty.
 */
import { DataError, UsageError } from '../util/errors.js';

export interface DispatchPlan {
  numTokens: number;
  numExperts: number;
  /** Rows per expert over all groups, R = Σ_g capacity_g. */
  rowsPerExpert: number;
  groupSizes: number[];
  capacities: number[];
  /** (E·R): token+1 held by each expert-buffer row, 0 = empty. */
  rowToken: Int32Array;
  /** (E·R): flat gate index t·E+e+1 for each row (0 = empty, reads a zero gate). */
  rowGate: Int32Array;
  /** Top-k only, (N·K) token-major: chosen expert, slot, kept flag. */
  expert?: Int32Array;
  slot?: Int32Array;
  kept?: Uint8Array;
  k: number;
  /** Assignments that were processed / asked for (S·K per group for top-k, capacity slots for expert choice). */
  processed: number;
  requested: number;
  /** Processed assignments per expert. */
  expertCount: Float64Array;
}

export type CapacityFn = (groupSize: number) => number;

function groupSizesFor(numTokens: number, groupSize: number): number[] {
  if (groupSize < 1) throw new UsageError(`routing group size must be ≥ 1, got ${groupSize}`);
  const sizes: number[] = [];
  for (let start = 0; start < numTokens; start += groupSize) sizes.push(Math.min(groupSize, numTokens - start));
  return sizes;
}

/**
 * Each token's K experts by descending gate (ties to the lower index; -Infinity/NaN rows fall
 * back to the lowest unchosen experts) into expert (N·K), and its top gate into top1 (N).
 * Chosen experts are marked with the token's stamp, so nothing is cleared per token.
 */
function chooseTopK(
  gates: Float32Array | Float64Array,
  N: number,
  E: number,
  K: number,
  expert: Int32Array,
  top1: Float64Array,
): void {
  if (K === 2 && E >= 2) {
    chooseTop2(gates, N, E, expert, top1);
    return;
  }
  const stamp = new Int32Array(E).fill(-1);
  for (let t = 0; t < N; t++) {
    const base = t * E;
    for (let c = 0; c < K; c++) {
      let best = -1,
        bestV = -Infinity;
      for (let e = 0; e < E; e++) {
        const v = gates[base + e]!;
        if (v > bestV && stamp[e] !== t) {
          bestV = v;
          best = e;
        }
      }
      if (best < 0) for (let e = 0; e < E && best < 0; e++) if (stamp[e] !== t) best = e; // all remaining are -Infinity/NaN
      stamp[best] = t;
      expert[t * K + c] = best;
      if (c === 0) top1[t] = bestV;
    }
  }
}

/**
 * chooseTopK for K = 2 in one pass per token (the common V-MoE setting): strict comparisons keep
 * the lower index on ties, and NaN / -Infinity gates are never chosen unless nothing else is left,
 * exactly as the general loop.
 */
function chooseTop2(
  gates: Float32Array | Float64Array,
  N: number,
  E: number,
  expert: Int32Array,
  top1: Float64Array,
): void {
  for (let t = 0; t < N; t++) {
    const base = t * E;
    let b1 = -1,
      v1 = -Infinity,
      b2 = -1,
      v2 = -Infinity;
    for (let e = 0; e < E; e++) {
      const v = gates[base + e]!;
      if (v > v1) {
        b2 = b1;
        v2 = v1;
        b1 = e;
        v1 = v;
      } else if (v > v2) {
        b2 = e;
        v2 = v;
      }
    }
    if (b1 < 0) b1 = 0;
    if (b2 < 0) b2 = b1 === 0 ? 1 : 0;
    expert[2 * t] = b1;
    expert[2 * t + 1] = b2;
    top1[t] = v1;
  }
}

/** A top-k plan's groups, their capacities and R = Σ capacities, after checking gates and k. */
function topKLayout(
  gates: ArrayLike<number>,
  N: number,
  E: number,
  opts: { k: number; groupSize: number; capacity: CapacityFn },
) {
  if (gates.length !== N * E) throw new DataError(`gates have ${gates.length} values, expected ${N}×${E}`);
  if (opts.k < 1 || opts.k > E) throw new UsageError(`k must be in [1, ${E}], got ${opts.k}`);
  const sizes = groupSizesFor(N, opts.groupSize);
  const caps = sizes.map((s) => opts.capacity(s));
  return { sizes, caps, R: caps.reduce((a, b) => a + b, 0) };
}

/**
 * Top-k per token (docs/spec/routing.md §5–§6): K-major assignment; within a rank, position order
 * (vanilla) or descending top-1 gate (BPR, stable); slot ≥ C drops the assignment.
 * gates: (N, E) row-major. Ties between experts go to the lower index.
 */
export function planTopK(
  gates: Float32Array | Float64Array,
  numTokens: number,
  numExperts: number,
  opts: { k: number; groupSize: number; capacity: CapacityFn; batchPriority: boolean },
): DispatchPlan {
  const N = numTokens,
    E = numExperts,
    K = opts.k;
  const { sizes, caps, R } = topKLayout(gates, N, E, opts);
  const expert = new Int32Array(N * K);
  const slot = new Int32Array(N * K);
  const kept = new Uint8Array(N * K);
  const top1 = new Float64Array(N);
  chooseTopK(gates, N, E, K, expert, top1);
  const rowToken = new Int32Array(E * R);
  const rowGate = new Int32Array(E * R);
  const expertCount = new Float64Array(E);
  const counts = new Int32Array(E);
  let processed = 0;
  let start = 0,
    offset = 0;
  for (let g = 0; g < sizes.length; g++) {
    const S = sizes[g]!,
      C = caps[g]!;
    const order = new Int32Array(S);
    for (let i = 0; i < S; i++) order[i] = start + i;
    // a typed-array sort with a comparator is stable (ES2019+), so ties keep position order
    if (opts.batchPriority) order.sort((a, b) => top1[b]! - top1[a]! || a - b);
    counts.fill(0);
    for (let c = 0; c < K; c++) {
      for (let i = 0; i < S; i++) {
        const t = order[i]!;
        const a = t * K + c;
        const e = expert[a]!;
        const s = counts[e]!++;
        slot[a] = s;
        if (s < C) {
          kept[a] = 1;
          processed++;
          expertCount[e]!++;
          const row = e * R + offset + s;
          rowToken[row] = t + 1;
          rowGate[row] = t * E + e + 1;
        }
      }
    }
    start += S;
    offset += C;
  }
  return {
    numTokens: N,
    numExperts: E,
    rowsPerExpert: R,
    groupSizes: sizes,
    capacities: caps,
    rowToken,
    rowGate,
    expert,
    slot,
    kept,
    k: K,
    processed,
    requested: N * K,
    expertCount,
  };
}

/**
 * Expert choice: in each group every expert takes its top-C tokens by its own
 * gate column (ties: lower token first); a token may get 0..E experts.
 */
export function planExpertChoice(
  gates: Float32Array | Float64Array,
  numTokens: number,
  numExperts: number,
  opts: { groupSize: number; capacity: CapacityFn },
): DispatchPlan {
  const N = numTokens,
    E = numExperts;
  if (gates.length !== N * E) throw new DataError(`gates have ${gates.length} values, expected ${N}×${E}`);
  const sizes = groupSizesFor(N, opts.groupSize);
  const caps = sizes.map((s) => Math.min(opts.capacity(s), s));
  const R = caps.reduce((a, b) => a + b, 0);
  const rowToken = new Int32Array(E * R);
  const rowGate = new Int32Array(E * R);
  const expertCount = new Float64Array(E);
  let start = 0,
    offset = 0,
    processed = 0;
  for (let g = 0; g < sizes.length; g++) {
    const S = sizes[g]!,
      C = caps[g]!;
    for (let e = 0; e < E; e++) {
      const idx = Array.from({ length: S }, (_, i) => start + i);
      idx.sort((a, b) => gates[b * E + e]! - gates[a * E + e]! || a - b);
      for (let j = 0; j < C; j++) {
        const t = idx[j]!;
        const row = e * R + offset + j;
        rowToken[row] = t + 1;
        rowGate[row] = t * E + e + 1;
      }
      expertCount[e]! += C;
      processed += C;
    }
    start += S;
    offset += C;
  }
  return {
    numTokens: N,
    numExperts: E,
    rowsPerExpert: R,
    groupSizes: sizes,
    capacities: caps,
    rowToken,
    rowGate,
    k: 0,
    processed,
    requested: processed,
    expertCount,
  };
}

/**
 * The plan's expert buffers with each expert's filled rows moved to the front, in their
 * order (groups, then slots): rowToken/rowGate in the same (E·R) layout, and rows (E) the
 * filled count per expert. Every (token, gate) pair stays with its expert, so the layer's
 * output is unchanged; products can then skip each expert's empty tail.
 */
export function packExpertRows(plan: Pick<DispatchPlan, 'rowToken' | 'rowGate' | 'numExperts' | 'rowsPerExpert'>): {
  rowToken: Int32Array;
  rowGate: Int32Array;
  rows: Int32Array;
} {
  const E = plan.numExperts,
    R = plan.rowsPerExpert;
  const rowToken = new Int32Array(E * R),
    rowGate = new Int32Array(E * R),
    rows = new Int32Array(E);
  for (let e = 0; e < E; e++) {
    let n = 0;
    for (let i = e * R; i < (e + 1) * R; i++) {
      if (plan.rowToken[i] === 0) continue;
      rowToken[e * R + n] = plan.rowToken[i]!;
      rowGate[e * R + n] = plan.rowGate[i]!;
      n++;
    }
    rows[e] = n;
  }
  return { rowToken, rowGate, rows };
}

/** Expert buffers with each expert's filled rows first (see packExpertRows). */
export interface PackedRows {
  rowToken: Int32Array;
  rowGate: Int32Array;
  /** (E) filled rows per expert. */
  rows: Int32Array;
}

/** A native planTopK + packExpertRows filling preallocated arrays (the wasm-blas addon's planTopK). */
export interface NativeTopKPlanner {
  planTopK(
    gates: Float32Array,
    N: number,
    E: number,
    K: number,
    groupSizes: Int32Array,
    capacities: Int32Array,
    batchPriority: boolean,
    expert: Int32Array,
    slot: Int32Array,
    kept: Uint8Array,
    rowToken: Int32Array,
    rowGate: Int32Array,
    packedToken: Int32Array,
    packedGate: Int32Array,
    rows: Int32Array,
  ): number;
}

/**
 * planTopK and its packed rows, natively when `native` is given (one pass, no intermediate
 * arrays; tests hold it equal to the functions above), else with planTopK + packExpertRows.
 */
export function planTopKPacked(
  gates: Float32Array | Float64Array,
  numTokens: number,
  numExperts: number,
  opts: { k: number; groupSize: number; capacity: CapacityFn; batchPriority: boolean },
  native: NativeTopKPlanner | null,
): { plan: DispatchPlan; packed: PackedRows } {
  if (!native || !(gates instanceof Float32Array)) {
    const plan = planTopK(gates, numTokens, numExperts, opts);
    return { plan, packed: packExpertRows(plan) };
  }
  const N = numTokens,
    E = numExperts,
    K = opts.k;
  const { sizes, caps, R } = topKLayout(gates, N, E, opts);
  const expert = new Int32Array(N * K),
    slot = new Int32Array(N * K),
    kept = new Uint8Array(N * K);
  const rowToken = new Int32Array(E * R),
    rowGate = new Int32Array(E * R);
  const packed = { rowToken: new Int32Array(E * R), rowGate: new Int32Array(E * R), rows: new Int32Array(E) };
  const processed = native.planTopK(
    gates,
    N,
    E,
    K,
    Int32Array.from(sizes),
    Int32Array.from(caps),
    opts.batchPriority,
    expert,
    slot,
    kept,
    rowToken,
    rowGate,
    packed.rowToken,
    packed.rowGate,
    packed.rows,
  );
  const plan: DispatchPlan = {
    numTokens: N,
    numExperts: E,
    rowsPerExpert: R,
    groupSizes: sizes,
    capacities: caps,
    rowToken,
    rowGate,
    expert,
    slot,
    kept,
    k: K,
    processed,
    requested: N * K,
    expertCount: Float64Array.from(packed.rows),
  };
  return { plan, packed };
}
