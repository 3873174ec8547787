/**
 * The pure reference router (docs/spec/routing.md): plain arrays in, plain arrays out. The tensor
 * MoE layer is tested against these functions, and users can call them to see exactly
 * which (token, expert, slot) a routing decision produced.
 *
 * Tie rules (both match the reference's sort/top-k behaviour):
 * - top-k within a token: equal gates go to the lower expert index first;
 * - BPR order across tokens: descending top-1 gate, equal gates keep position order;
 * - expert-choice: equal gates go to the lower token index first.
 */
import { expertCapacity, expertChoiceCapacity, type CapacityRounding } from './capacity.js';
import { DataError, UsageError } from '../util/errors.js';

/** Checks a non-empty (S, E) matrix of finite numbers; returns [S, E]. */
export function checkMatrix(m: number[][], name: string): [number, number] {
  if (!Array.isArray(m) || m.length === 0) {
    throw new DataError(`${name} must be a non-empty (tokens, experts) array of rows`);
  }
  const row0 = m[0];
  if (!Array.isArray(row0) || row0.length === 0) {
    throw new DataError(`${name}[0] must be a non-empty array (one value per expert)`);
  }
  const width = row0.length;
  for (let s = 0; s < m.length; s++) {
    const row = m[s];
    if (!Array.isArray(row)) throw new DataError(`${name}[${s}] is not an array`);
    if (row.length !== width) {
      throw new DataError(`${name} is ragged: row ${s} has ${row.length} values, row 0 has ${width}`);
    }
    for (let e = 0; e < width; e++) {
      const v = row[e];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new DataError(`${name}[${s}][${e}] must be a finite number, got ${String(v)}`);
      }
    }
  }
  return [m.length, width];
}

/** Indices of the k largest values, largest first; equal values: lower index first. */
export function topKIndices(row: number[], k: number): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  idx.sort((a, b) => row[b]! - row[a]!); // stable sort: equal values keep the lower index first
  return idx.slice(0, k);
}

/** Options of `topExpertsPerItem`: k, the capacity (absolute or as a factor), Batch Prioritized Routing, rounding. */
export interface TopExpertsOptions {
  k: number;
  /** Absolute capacity C (exactly one of capacity / capacityFactor). */
  capacity?: number;
  capacityFactor?: number;
  /** Batch Prioritized Routing: assign tokens in descending order of their top-1 gate. */
  batchPriority?: boolean;
  rounding?: CapacityRounding;
}

/**
 * What `topExpertsPerItem` returns for a group of S tokens: per token and choice (S, K) the expert, its buffer
 * slot, whether it was kept, and the combine weight.
 */
export interface TopExpertsResult {
  /** C, slots per expert in this group. */
  capacity: number;
  /** (S, K) chosen expert per token and choice (choice 0 = largest gate). */
  expert: number[][];
  /** (S, K) slot in that expert's buffer; may be ≥ capacity when dropped. */
  slot: number[][];
  /** (S, K) slot < capacity. */
  kept: boolean[][];
  /** (S, K) the selected (not renormalised) gate, 0 where dropped. */
  combine: number[][];
}

/**
 * Noisy top-k per token with capacity, K-major assignment and optional BPR (docs/spec/routing.md
 * §2–§6). `gates` (S, E) are the (already noisy, in training) softmax outputs.
 */
export function topExpertsPerItem(gates: number[][], opts: TopExpertsOptions): TopExpertsResult {
  const [numTokens, numExperts] = checkMatrix(gates, 'gates');
  const { k } = opts;
  if (!Number.isInteger(k) || k < 1 || k > numExperts) {
    throw new UsageError(`k must be an integer in [1, ${numExperts}] (numExperts), got ${k}`);
  }
  const capacity = expertCapacity({
    groupSize: numTokens,
    numExperts,
    k,
    capacity: opts.capacity,
    capacityFactor: opts.capacityFactor,
    rounding: opts.rounding,
  });

  const expert = gates.map((row) => topKIndices(row, k)); // (S, K)
  const order = Array.from({ length: numTokens }, (_, s) => s);
  if (opts.batchPriority) {
    const top1 = expert.map((choices, s) => gates[s]![choices[0]!]!);
    order.sort((a, b) => top1[b]! - top1[a]!); // Array.prototype.sort is stable
  }

  const slot = expert.map(() => new Array<number>(k).fill(0));
  const kept = expert.map(() => new Array<boolean>(k).fill(false));
  const combine = expert.map(() => new Array<number>(k).fill(0));
  const filled = new Array<number>(numExperts).fill(0); // assignments so far per expert
  for (let choice = 0; choice < k; choice++) {
    for (const s of order) {
      const e = expert[s]![choice]!;
      const sl = filled[e]!;
      filled[e] = sl + 1;
      slot[s]![choice] = sl;
      if (sl < capacity) {
        kept[s]![choice] = true;
        combine[s]![choice] = gates[s]![e]!;
      }
    }
  }
  return { capacity, expert, slot, kept, combine };
}

/** Dense (S, E, C) combine tensor: combine[s][e][slot] = gate for every kept assignment. */
export function combineTensor(result: TopExpertsResult, numExperts: number): number[][][] {
  checkNumExperts(result, numExperts);
  const { capacity } = result;
  const out = result.expert.map(() => Array.from({ length: numExperts }, () => new Array<number>(capacity).fill(0))); // (S, E, C)
  result.expert.forEach((choices, s) =>
    choices.forEach((e, j) => {
      if (result.kept[s]![j]) out[s]![e]![result.slot[s]![j]!] = result.combine[s]![j]!;
    }),
  );
  return out;
}

/** Dense (S, E, C) dispatch mask: true where token s occupies slot c of expert e. */
export function dispatchMask(result: TopExpertsResult, numExperts: number): boolean[][][] {
  checkNumExperts(result, numExperts);
  const { capacity } = result;
  const out = result.expert.map(() =>
    Array.from({ length: numExperts }, () => new Array<boolean>(capacity).fill(false)),
  ); // (S, E, C)
  result.expert.forEach((choices, s) =>
    choices.forEach((e, j) => {
      if (result.kept[s]![j]) out[s]![e]![result.slot[s]![j]!] = true;
    }),
  );
  return out;
}

function checkNumExperts(result: TopExpertsResult, numExperts: number): void {
  if (!Number.isInteger(numExperts) || numExperts < 1) {
    throw new UsageError(`numExperts must be an integer ≥ 1, got ${numExperts}`);
  }
  for (const choices of result.expert) {
    for (const e of choices) {
      if (e >= numExperts) throw new DataError(`routing result uses expert ${e}, but numExperts is ${numExperts}`);
    }
  }
}

/** Share of (token, choice) assignments that were kept: kept / (S·K). */
export function processedFraction(result: TopExpertsResult): number {
  let kept = 0;
  let total = 0;
  for (const row of result.kept) {
    for (const k of row) {
      total++;
      if (k) kept++;
    }
  }
  return total === 0 ? 0 : kept / total;
}

/** What `topItemsPerExpert` returns: per expert and slot (E, C) the token taken and its gate. */
export interface TopItemsResult {
  /** C, slots per expert (never more than the group's token count). */
  capacity: number;
  /** (E, C) token index held by each slot, best gate first. */
  token: number[][];
  /** (E, C) that token's gate for this expert. */
  combine: number[][];
}

/**
 * Expert-choice routing: each expert takes the C tokens with the largest gate in its
 * own column. A token may be taken by 0..E experts; nothing is "dropped" per token.
 * C = ceil(S·c/E) from a factor, or an absolute capacity; either way it is capped at S
 * because an expert cannot take more tokens than the group holds.
 */
export function topItemsPerExpert(
  gates: number[][],
  opts: { capacity?: number; capacityFactor?: number },
): TopItemsResult {
  const [numTokens, numExperts] = checkMatrix(gates, 'gates');
  const hasFactor = opts.capacityFactor !== undefined && opts.capacityFactor !== null;
  const hasCapacity = opts.capacity !== undefined && opts.capacity !== null;
  if (hasFactor === hasCapacity) {
    throw new UsageError(
      `give exactly one of capacity / capacityFactor (got capacity=${opts.capacity}, capacityFactor=${opts.capacityFactor})`,
    );
  }
  let wanted: number;
  if (hasCapacity) {
    wanted = opts.capacity!;
    if (!Number.isInteger(wanted) || wanted < 1) throw new UsageError(`capacity must be an integer ≥ 1, got ${wanted}`);
  } else {
    wanted = expertChoiceCapacity({ groupSize: numTokens, numExperts, capacityFactor: opts.capacityFactor! });
  }
  const capacity = Math.min(wanted, numTokens);

  const token: number[][] = [];
  const combine: number[][] = [];
  for (let e = 0; e < numExperts; e++) {
    const column = gates.map((row) => row[e]!); // (S,)
    const chosen = topKIndices(column, capacity); // ties: lower token index first
    token.push(chosen);
    combine.push(chosen.map((s) => column[s]!));
  }
  return { capacity, token, combine };
}
