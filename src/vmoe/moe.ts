/**
 * The sparse MoE layer (spec §2–3) on tensors: router → host-side dispatch
 * plan → gather into per-expert buffers → the E expert MLPs (one batched
 * product per weight, or E plain 2-D products where batched ones are slow) →
 * weighted scatter-add back to tokens. Routing indices carry no gradient; the
 * gates do.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasKernel, isPlainWasm, VMOE_ROUTER_AUX } from '../engine/fused-kernels.js';
import { combineRows, dense2d, dispatchRows, expertDense, gelu, softmax } from './layers.js';
import { packExpertRows, planExpertChoice, planTopK, type DispatchPlan } from './dispatch.js';
import { expertCapacity, expertChoiceCapacity, type CapacityRounding } from './capacity.js';
import { checkPartition, partitionMask } from '../ensembles/partition.js';
import { importanceLossOfGroup, routerAuxLosses } from './aux-losses.js';
import { standardNormals } from '../util/rng.js';

export interface MoeWeights {
  router: tf.Tensor2D; // (H, E)
  w1: tf.Tensor3D; // (E, H, mlp)
  b1: tf.Tensor2D; // (E, mlp)
  w2: tf.Tensor3D; // (E, mlp, H)
  b2: tf.Tensor2D; // (E, H)
}

export interface RoutingSettings {
  router: 'top-k' | 'expert-choice';
  k: number;
  capacityFactor: number;
  /** Absolute capacity per group; overrides capacityFactor when set. */
  capacity: number | null;
  rounding: CapacityRounding;
  /** Tokens per routing group (S). */
  groupSize: number;
  batchPriority: boolean;
  noiseStd: number;
  aux: { importance: number; load: number; gshard: number; zloss: number };
}

export interface MoeLayerStats {
  /** Processed / requested (token, choice) assignments. */
  processedFraction: number;
  dropFraction: number;
  /** Share of processed assignments per expert (sums to 1). */
  expertLoad: number[];
  capacity: number;
  groupSize: number;
  importanceLoss: number;
  loadLoss: number;
}

export interface MoeLayerResult {
  y: tf.Tensor2D; // (N, H)
  aux: tf.Scalar;
  plan: DispatchPlan;
  stats: MoeLayerStats;
  gatesClean: tf.Tensor2D; // (N, E)
}

export type DispatchImpl = 'gather' | 'dense';

function capacityFn(r: RoutingSettings, E: number): (S: number) => number {
  if (r.router === 'expert-choice') {
    return (S) => (r.capacity !== null ? r.capacity : expertChoiceCapacity({ groupSize: S, numExperts: E, capacityFactor: r.capacityFactor }));
  }
  return (S) =>
    r.capacity !== null
      ? expertCapacity({ groupSize: S, numExperts: E, k: r.k, capacity: r.capacity })
      : expertCapacity({ groupSize: S, numExperts: E, k: r.k, capacityFactor: r.capacityFactor, rounding: r.rounding });
}

/** The router's noise for one layer call, (N, E): σ times standard normals from its seed. */
export function routerNoise(N: number, E: number, seed: number, sigma = 1): tf.Tensor2D {
  return tf.tensor2d(standardNormals(N * E, seed, sigma), [N, E]);
}

interface RouterAuxArgs {
  /** (N, E) clean logits (E³: masked), and their softmax. */
  logits: tf.Tensor2D;
  gatesClean: tf.Tensor2D;
  /** The clean gates' values when already on the host. */
  gatesCleanValues: Float32Array | null;
  /** (N, E) noisy logits and each token's K-th expert; null: no load loss. */
  noisy: tf.Tensor2D | null;
  kthExpert: Int32Array | null;
  sigma: number;
  groupSizes: number[];
  members: number;
  weights: { importance: number; load: number };
}

/**
 * The importance and load losses in one pass (routerAuxLosses: values, and the exact gradient
 * of their weighted sum with respect to the logits), as a scalar tensor carrying that gradient:
 * one op forward and one backward instead of ~60. A native kernel where the backend registers
 * one, else the host function on copies.
 */
function routerAuxTerm(a: RouterAuxArgs): { loss: tf.Scalar; importance: number; load: number } {
  const attrs = { groupSizes: a.groupSizes, members: a.members, sigma: a.sigma, importanceWeight: a.weights.importance, loadWeight: a.weights.load };
  let importance = NaN, load = NaN;
  const f = tf.customGrad(((lg: tf.Tensor2D, save: tf.GradSaveFunc) => {
    let weighted: number;
    let dLogits: tf.Tensor;
    if (hasKernel(VMOE_ROUTER_AUX)) {
      const inputs: tf.NamedTensorMap = { logits: lg, gates: a.gatesClean };
      if (a.noisy && a.kthExpert) Object.assign(inputs, { noisy: a.noisy, kth: tf.tensor1d(a.kthExpert, 'int32') });
      const [d, losses] = tf.engine().runKernel(VMOE_ROUTER_AUX, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      [importance, load, weighted] = Array.from(losses!.dataSync()) as [number, number, number];
      dLogits = d!;
    } else {
      const host = routerAuxLosses({
        numTokens: lg.shape[0], numExperts: lg.shape[1], members: a.members, groupSizes: a.groupSizes, sigma: a.sigma,
        kthExpert: a.kthExpert, weights: a.weights,
        logits: lg.dataSync() as Float32Array,
        gates: a.gatesCleanValues ?? (a.gatesClean.dataSync() as Float32Array),
        noisy: a.noisy ? (a.noisy.dataSync() as Float32Array) : null,
      });
      ({ importance, load, weighted } = host);
      dLogits = tf.tensor2d(host.dLogits, lg.shape);
    }
    save([dLogits]);
    return { value: tf.scalar(weighted), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, saved[0]!) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const loss = f(a.logits) as tf.Scalar;
  return { loss, importance, load };
}

/**
 * Mean over routing groups of f(the group's rows): consecutive groups of one size go
 * to f together as a (G, S, E) batch (f returns one value per group), so the op count
 * does not grow with the number of groups; `start` is the batch's first row.
 */
function meanOverGroups(t: tf.Tensor2D, sizes: number[], f: (g: tf.Tensor3D, start: number) => tf.Tensor1D): tf.Scalar {
  const parts: tf.Tensor1D[] = [];
  const E = t.shape[1];
  let start = 0;
  for (let i = 0; i < sizes.length;) {
    const S = sizes[i]!;
    let G = 1;
    while (i + G < sizes.length && sizes[i + G] === S) G++;
    const rows = G * S === t.shape[0] ? t : tf.slice(t, [start, 0], [G * S, E]);
    parts.push(f(tf.reshape(rows, [G, S, E]), start));
    start += G * S;
    i += G;
  }
  return tf.mean(parts.length === 1 ? parts[0]! : tf.concat(parts)) as tf.Scalar;
}

/** Runs the E expert MLPs on their packed buffers: (E·R, H) → (E·R, H); rows: (E) filled rows per expert. */
function runExperts(ein: tf.Tensor2D, w: MoeWeights, R: number, rows: Int32Array): tf.Tensor2D {
  return isPlainWasm() ? runExpertsLooped(ein, w, R) : runExpertsBatched(ein, w, R, rows);
}

/**
 * All experts in one batched product per weight: a handful of kernels forward and backward
 * whatever E is. Where the backend has the packed-row kernel, each expert's product covers only
 * its filled rows, so time follows the tokens actually routed (at most the capacity).
 */
function runExpertsBatched(ein: tf.Tensor2D, w: MoeWeights, R: number, rows: Int32Array): tf.Tensor2D {
  const [E, H] = w.w1.shape;
  const filled = tf.tensor1d(rows, 'int32');
  const x = tf.reshape(ein, [E, R, H]) as tf.Tensor3D;
  const hidden = gelu(expertDense(x, w.w1, w.b1, filled)) as tf.Tensor3D; // (E, R, mlp)
  const out = expertDense(hidden, w.w2, w.b2, filled); // (E, R, H)
  return tf.reshape(out, [E * R, H]);
}

/** One plain 2-D MLP per expert, for backends whose batched products are slow (plain wasm). */
function runExpertsLooped(ein: tf.Tensor2D, w: MoeWeights, R: number): tf.Tensor2D {
  const E = w.w1.shape[0];
  const H = ein.shape[1];
  const w1 = tf.unstack(w.w1) as tf.Tensor2D[];
  const b1 = tf.unstack(w.b1) as tf.Tensor1D[];
  const w2 = tf.unstack(w.w2) as tf.Tensor2D[];
  const b2 = tf.unstack(w.b2) as tf.Tensor1D[];
  const outs: tf.Tensor2D[] = [];
  for (let e = 0; e < E; e++) {
    const xe = tf.slice(ein, [e * R, 0], [R, H]);
    outs.push(dense2d(gelu(dense2d(xe, w1[e]!, b1[e]!)) as tf.Tensor2D, w2[e]!, b2[e]!));
  }
  return tf.concat(outs, 0);
}

export function moeLayer(
  x: tf.Tensor2D,
  w: MoeWeights,
  r: RoutingSettings,
  opts: {
    train: boolean; noiseSeed: number | null; impl?: DispatchImpl; auxLosses?: boolean;
    /** E³: rows are (image, token, member) with member fastest; member m routes only to experts [m·E/M, (m+1)·E/M). */
    members?: number;
  },
): MoeLayerResult {
  const [N, H] = x.shape;
  const E = w.router.shape[1];
  const M = opts.members ?? 1;
  if (M > 1) checkPartition(E, r.groupSize, N, M);
  const rawLogits = dense2d(x, w.router); // (N, E)
  const logits = M > 1 ? tf.add(rawLogits, partitionMask(N, E, M)) as tf.Tensor2D : rawLogits;
  // Each member's softmax runs over its own E/M experts, so its noise scale is σ = noise_std/(E/M).
  const sigma = r.noiseStd / (E / M);
  const noisy = opts.train && sigma > 0 && opts.noiseSeed !== null
    ? tf.add(logits, routerNoise(N, E, opts.noiseSeed, sigma))
    : logits;
  const gates = softmax(noisy) as tf.Tensor2D; // (N, E)
  const gatesClean = noisy === logits ? gates : (softmax(logits) as tf.Tensor2D);

  const gateValues = gates.dataSync() as Float32Array;
  const cap = capacityFn(r, E);
  const plan = r.router === 'expert-choice'
    ? planExpertChoice(gateValues, N, E, { groupSize: r.groupSize, capacity: cap })
    : planTopK(gateValues, N, E, { k: r.k, groupSize: r.groupSize, capacity: cap, batchPriority: r.batchPriority });
  const R = plan.rowsPerExpert;

  const packed = packExpertRows(plan); // each expert's tokens first: its products can stop there
  const rowToken = tf.tensor1d(packed.rowToken, 'int32');
  const rowGate = tf.tensor1d(packed.rowGate, 'int32');
  let y: tf.Tensor2D;
  if ((opts.impl ?? 'gather') === 'gather') {
    const ein = dispatchRows(x, rowToken); // (E·R, H)
    const out = runExperts(ein, w, R, packed.rows); // (E·R, H)
    y = combineRows(out, gates, rowToken, rowGate, N); // (N, H)
  } else {
    // Reference: dense one-hot dispatch/combine (einsum form), O(N·E·R·H).
    const dispatch = tf.cast(tf.slice(tf.oneHot(rowToken, N + 1), [0, 1], [E * R, N]), 'float32') as tf.Tensor2D; // (E·R, N)
    const ein = tf.matMul(dispatch, x) as tf.Tensor2D; // (E·R, H)
    const out = runExperts(ein, w, R, packed.rows);
    const rowExpert = new Int32Array(E * R).map((_, i) => Math.floor(i / R));
    const expertOfRow = tf.transpose(tf.cast(tf.oneHot(tf.tensor1d(rowExpert, 'int32'), E), 'float32')) as tf.Tensor2D; // (E, E·R)
    const combine = tf.mul(tf.transpose(dispatch), tf.matMul(gates, expertOfRow)) as tf.Tensor2D; // (N, E·R)
    y = tf.matMul(combine, out);
  }

  let aux: tf.Scalar | null = null;
  let importanceLoss = NaN, loadLoss = NaN;
  if (opts.auxLosses !== false && r.router === 'top-k') {
    const terms: tf.Scalar[] = [];
    const withLoad = opts.train && sigma > 0 && opts.noiseSeed !== null;
    let kthExpert: Int32Array | null = null;
    if (withLoad) {
      // Threshold: the K-th largest noisy logit (its expert is the K-th choice).
      kthExpert = new Int32Array(N);
      for (let t = 0; t < N; t++) kthExpert[t] = plan.expert![t * r.k + r.k - 1]!;
    }
    const host = routerAuxTerm({
      logits, gatesClean, gatesCleanValues: gatesClean === gates ? gateValues : null, noisy: withLoad ? (noisy as tf.Tensor2D) : null, kthExpert,
      sigma, groupSizes: plan.groupSizes, members: M, weights: { importance: r.aux.importance, load: withLoad ? r.aux.load : 0 },
    });
    importanceLoss = host.importance;
    loadLoss = host.load;
    if (r.aux.importance > 0 || (withLoad && r.aux.load > 0)) terms.push(host.loss);
    if (r.aux.gshard > 0) {
      const top1 = new Int32Array(N);
      for (let t = 0; t < N; t++) top1[t] = plan.expert![t * r.k]!;
      const f = tf.cast(tf.oneHot(tf.tensor1d(top1, 'int32'), E), 'float32') as tf.Tensor2D;
      const gs = meanOverGroups(gates, plan.groupSizes, (g, start) => {
        const [G, S] = g.shape;
        const fg = tf.mean(tf.reshape(tf.slice(f, [start, 0], [G * S, E]), [G, S, E]), 1); // (G, E)
        return tf.mul(tf.mean(tf.mul(fg, tf.mean(g, 1)), -1), E * E) as tf.Tensor1D;
      });
      terms.push(tf.mul(gs, r.aux.gshard));
    }
    if (r.aux.zloss > 0) {
      terms.push(tf.mul(tf.mean(tf.square(tf.logSumExp(logits, -1))), r.aux.zloss)); // masked logits: the member's own partition
    }
    if (terms.length) aux = terms.length === 1 ? terms[0]! : (tf.addN(terms) as tf.Scalar);
  } else if (r.router === 'top-k' && noisy === logits) {
    // No loss tensors (inference): the importance statistic from the clean gates already on the host.
    let sum = 0, start = 0;
    for (const S of plan.groupSizes) {
      sum += importanceLossOfGroup(gateValues, start, S, E, M);
      start += S;
    }
    importanceLoss = sum / plan.groupSizes.length;
  }

  const total = plan.processed;
  const stats: MoeLayerStats = {
    processedFraction: plan.requested ? plan.processed / plan.requested : 1,
    dropFraction: plan.requested ? 1 - plan.processed / plan.requested : 0,
    expertLoad: Array.from(plan.expertCount, (c) => (total ? c / total : 0)),
    capacity: plan.capacities[0]!,
    groupSize: plan.groupSizes[0]!,
    importanceLoss,
    loadLoss,
  };
  return { y, aux: aux ?? tf.scalar(0), plan, stats, gatesClean };
}
