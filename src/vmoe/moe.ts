/**
 * The sparse MoE layer (docs/spec/routing.md, docs/spec/aux-losses.md) on tensors: router → host-side dispatch
 * plan → gather into per-expert buffers → the E expert MLPs (one batched
 * product per weight, or E plain 2-D products where batched ones are slow) →
 * weighted scatter-add back to tokens. Routing indices carry no gradient; the
 * gates do. On wasm-blas the router, the aux losses and the expert products
 * are native kernels and the plan and noise native host routines (equal to
 * the JavaScript ones, which every other backend uses).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  hasKernel,
  isPlainWasm,
  VMOE_ROUTER_AUX,
  VMOE_ROUTER_GATES,
  VMOE_ROUTER_GATES_GRAD,
} from '../engine/fused-kernels.js';
import {
  canGatherInExpertDense,
  combineRows,
  dense2d,
  dispatchRows,
  expertDense,
  expertDenseOfTokens,
  expertMlpCombine,
  gelu,
  softmax,
} from './layers.js';
import { packExpertRows, planExpertChoice, planTopKPacked, type DispatchPlan, type PackedRows } from './dispatch.js';
// The register module, not engine/native-blas.ts: that one also loads the addon (node:fs, node:module), which
// would keep this model code out of the browser (web/).
import { activeBlasAddon } from '../engine/native/register.js';
import { expertCapacity, expertChoiceCapacity, type CapacityRounding } from './capacity.js';
import { checkPartition, partitionMask } from './partition.js';
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
  /**
   * Round the experts' inputs and outputs to bfloat16, as the reference's `bfloat16: True` dispatcher does (it
   * moves tokens to and from the experts in bfloat16); default false.
   */
  dispatchBfloat16?: boolean;
}

/**
 * x rounded to the nearest bfloat16 value (8 significant bits), kept as float32: Veltkamp's split with the factor
 * 2^16 + 1 — t = c·x, x₈ = t − (t − x) — exact in float32 arithmetic for |x| < 2^111; its gradient is 1.
 */
export function roundToBfloat16(x: tf.Tensor2D): tf.Tensor2D {
  const t = tf.mul(x, 65537);
  return tf.sub(t, tf.sub(t, x)) as tf.Tensor2D;
}

/**
 * One MoE layer's routing statistics for a batch: processed and dropped fractions, per-expert load, capacity,
 * group size and the auxiliary losses.
 */
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
  /** (N, E) softmax of the noise-free logits; computed on first read under noise (training never reads it). */
  readonly gatesClean: tf.Tensor2D;
}

/**
 * How tokens reach their experts: `gather` (row gather/scatter, the default) or `dense` (one-hot einsum, the
 * reference form).
 */
export type DispatchImpl = 'gather' | 'dense';

function capacityFn(r: RoutingSettings, E: number): (S: number) => number {
  if (r.router === 'expert-choice') {
    return (S) =>
      r.capacity !== null
        ? r.capacity
        : expertChoiceCapacity({ groupSize: S, numExperts: E, capacityFactor: r.capacityFactor });
  }
  return (S) =>
    r.capacity !== null
      ? expertCapacity({ groupSize: S, numExperts: E, k: r.k, capacity: r.capacity })
      : expertCapacity({ groupSize: S, numExperts: E, k: r.k, capacityFactor: r.capacityFactor, rounding: r.rounding });
}

/** The router's noise for one layer call, (N, E) row-major: σ times standard normals from its seed. */
export function routerNoise(N: number, E: number, seed: number, sigma = 1): Float32Array {
  return standardNormals(N * E, seed, sigma, activeBlasAddon());
}

/** The router's tensors for one layer call, both (N, E). */
export interface RouterGates {
  /** x·W, plus the E³ partition mask for members > 1. */
  logits: tf.Tensor2D;
  /** softmax(logits + noise): the gates tokens are routed and combined with. */
  gates: tf.Tensor2D;
}

/**
 * Router logits and gates, x (N, H) · W (H, E) [+ mask] → logits, softmax(logits [+ noise]) →
 * gates: one native kernel each way where the backend registers one (its gradient is
 * registered below), else composed tfjs ops. noise: (N, E) already scaled by σ, or null.
 */
export function routerGates(x: tf.Tensor2D, w: tf.Tensor2D, noise: tf.Tensor2D | null, members: number): RouterGates {
  if (x.dtype === 'float32' && hasKernel(VMOE_ROUTER_GATES) && hasKernel(VMOE_ROUTER_GATES_GRAD)) {
    registerRouterGatesGradient();
    const inputs: tf.NamedTensorMap = noise ? { x, w, noise } : { x, w };
    const [logits, gates] = tf
      .engine()
      .runKernel(VMOE_ROUTER_GATES, inputs, { members } as unknown as tf.NamedAttrMap) as tf.Tensor2D[];
    return { logits: logits!, gates: gates! };
  }
  return composedRouterGates(x, w, noise, members);
}

/** routerGates from tfjs ops (every backend; the reference the fused kernel is tested against). */
export function composedRouterGates(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  noise: tf.Tensor2D | null,
  members: number,
): RouterGates {
  const [N, E] = [x.shape[0], w.shape[1]];
  const rawLogits = dense2d(x, w); // (N, E)
  const logits = members > 1 ? (tf.add(rawLogits, partitionMask(N, E, members)) as tf.Tensor2D) : rawLogits;
  const gates = softmax(noise ? tf.add(logits, noise) : logits) as tf.Tensor2D;
  return { logits, gates };
}

/**
 * The gradient of VmoeRouterGates: both output gradients go to one kernel, which returns dx
 * and dw together. (tfjs uploads zeros for an output off the gradient's path, e.g. the logits
 * when no loss reads them.)
 */
function registerRouterGatesGradient(): void {
  if (tf.getGradient(VMOE_ROUTER_GATES)) return;
  tf.registerGradient({
    kernelName: VMOE_ROUTER_GATES,
    inputsToSave: ['x', 'w'],
    outputsToSave: [false, true],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [dLogits, dGates] = dy as tf.Tensor[];
      const [x, w, gates] = saved;
      // Run here, not inside the per-input closures: tfjs calls each in its own tidy, which would
      // dispose the other input's gradient.
      const [dx, dw] = tf.engine().runKernel(VMOE_ROUTER_GATES_GRAD, {
        x: x!,
        w: w!,
        gates: gates!,
        dGates: dGates!,
        dLogits: dLogits!,
      }) as tf.Tensor[];
      return { x: () => dx!, w: () => dw!, noise: () => tf.zerosLike(dGates!) };
    },
  });
}

/** Row-wise softmax of (rows, cols) values on the host, in float64, rounded to float32. */
function softmaxHost(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, v[r * cols + j]!);
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(v[r * cols + j]! - max);
    for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(v[r * cols + j]! - max) / sum;
  }
  return out;
}

interface RouterAuxArgs {
  /** (N, E) clean logits (E³: masked). */
  logits: tf.Tensor2D;
  /** softmax(logits) when already on the host (no noise: the routing gates). */
  gatesCleanValues: Float32Array | null;
  /** The router's noise (tensor and host values) and each token's K-th expert; null: no load loss. */
  noise: { tensor: tf.Tensor2D; values: Float32Array } | null;
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
  const attrs = {
    groupSizes: a.groupSizes,
    members: a.members,
    sigma: a.sigma,
    importanceWeight: a.weights.importance,
    loadWeight: a.weights.load,
  };
  let importance = NaN,
    load = NaN;
  const f = tf.customGrad(((lg: tf.Tensor2D, save: tf.GradSaveFunc) => {
    let weighted: number;
    let dLogits: tf.Tensor;
    const [N, E] = lg.shape;
    if (hasKernel(VMOE_ROUTER_AUX)) {
      const inputs: tf.NamedTensorMap = { logits: lg };
      if (a.noise && a.kthExpert)
        Object.assign(inputs, { noise: a.noise.tensor, kth: tf.tensor1d(a.kthExpert, 'int32') });
      const [d, losses] = tf
        .engine()
        .runKernel(VMOE_ROUTER_AUX, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      [importance, load, weighted] = Array.from(losses!.dataSync()) as [number, number, number];
      dLogits = d!;
    } else {
      const logits = lg.dataSync() as Float32Array;
      const noise = a.noise?.values ?? null;
      const host = routerAuxLosses({
        numTokens: N,
        numExperts: E,
        members: a.members,
        groupSizes: a.groupSizes,
        sigma: a.sigma,
        kthExpert: a.kthExpert,
        weights: a.weights,
        logits,
        gates: a.gatesCleanValues ?? softmaxHost(logits, N, E),
        noisy: noise ? logits.map((l, i) => l + noise[i]!) : null, // float32 sums, as the router's
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
  for (let i = 0; i < sizes.length; ) {
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
  return secondExpertProduct(expertDense(x, w.w1, w.b1, filled), w, filled);
}

/** runExpertsBatched(dispatchRows(x, tokens), …) with the dispatch gather inside the first product: (N, H) → (E·R, H). */
function runExpertsOnTokens(x: tf.Tensor2D, tokens: tf.Tensor1D, w: MoeWeights, rows: Int32Array): tf.Tensor2D {
  const filled = tf.tensor1d(rows, 'int32');
  return secondExpertProduct(expertDenseOfTokens(x, tokens, w.w1, w.b1, filled), w, filled);
}

/** GELU and the second expert product on the first one's output (E, R, mlp) → (E·R, H). */
function secondExpertProduct(first: tf.Tensor3D, w: MoeWeights, filled: tf.Tensor1D): tf.Tensor2D {
  const [E, R] = first.shape;
  const out = expertDense(gelu(first) as tf.Tensor3D, w.w2, w.b2, filled); // (E, R, H)
  return tf.reshape(out, [E * R, out.shape[2]]);
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
    train: boolean;
    noiseSeed: number | null;
    impl?: DispatchImpl;
    auxLosses?: boolean;
    /** E³: rows are (image, token, member) with member fastest; member m routes only to experts [m·E/M, (m+1)·E/M). */
    members?: number;
  },
): MoeLayerResult {
  const [N, H] = x.shape;
  const E = w.router.shape[1];
  const M = opts.members ?? 1;
  if (M > 1) checkPartition(E, r.groupSize, N, M);
  // Each member's softmax runs over its own E/M experts, so its noise scale is σ = noise_std/(E/M).
  const sigma = r.noiseStd / (E / M);
  const withNoise = opts.train && sigma > 0 && opts.noiseSeed !== null;
  const noiseValues = withNoise ? routerNoise(N, E, opts.noiseSeed!, sigma) : null;
  const noise = noiseValues ? tf.tensor2d(noiseValues, [N, E]) : null;
  const { logits, gates } = routerGates(x, w.router, noise, M);

  const gateValues = gates.dataSync() as Float32Array;
  const cap = capacityFn(r, E);
  // Each expert's tokens first (packed rows): its products can stop there.
  let plan: DispatchPlan, packed: PackedRows;
  if (r.router === 'expert-choice') {
    plan = planExpertChoice(gateValues, N, E, { groupSize: r.groupSize, capacity: cap });
    packed = packExpertRows(plan);
  } else {
    ({ plan, packed } = planTopKPacked(
      gateValues,
      N,
      E,
      { k: r.k, groupSize: r.groupSize, capacity: cap, batchPriority: r.batchPriority },
      activeBlasAddon(),
    ));
  }
  const R = plan.rowsPerExpert;

  const rowToken = tf.tensor1d(packed.rowToken, 'int32');
  const rowGate = tf.tensor1d(packed.rowGate, 'int32');
  const bf16 = r.dispatchBfloat16 === true;
  const xe = bf16 ? roundToBfloat16(x) : x; // what the experts see
  const back = (t: tf.Tensor2D) => (bf16 ? roundToBfloat16(t) : t); // what they send back
  let y: tf.Tensor2D;
  if ((opts.impl ?? 'gather') === 'gather') {
    // Inference: experts and combine in one kernel where the backend has it (not with the bfloat16 round trips).
    const fused = bf16 ? null : expertMlpCombine(xe, rowToken, packed.rows, w, gates, rowGate);
    if (fused) {
      y = fused;
    } else {
      const out = canGatherInExpertDense(xe)
        ? runExpertsOnTokens(xe, rowToken, w, packed.rows)
        : runExperts(dispatchRows(xe, rowToken), w, R, packed.rows); // (E·R, H)
      y = combineRows(back(out), gates, rowToken, rowGate, N); // (N, H)
    }
  } else {
    // Reference: dense one-hot dispatch/combine (einsum form), O(N·E·R·H).
    const dispatch = tf.cast(tf.slice(tf.oneHot(rowToken, N + 1), [0, 1], [E * R, N]), 'float32') as tf.Tensor2D; // (E·R, N)
    const ein = tf.matMul(dispatch, xe) as tf.Tensor2D; // (E·R, H)
    const out = back(runExperts(ein, w, R, packed.rows));
    const rowExpert = new Int32Array(E * R).map((_, i) => Math.floor(i / R));
    const expertOfRow = tf.transpose(tf.cast(tf.oneHot(tf.tensor1d(rowExpert, 'int32'), E), 'float32')) as tf.Tensor2D; // (E, E·R)
    const combine = tf.mul(tf.transpose(dispatch), tf.matMul(gates, expertOfRow)) as tf.Tensor2D; // (N, E·R)
    y = tf.matMul(combine, out);
  }

  let aux: tf.Scalar | null = null;
  let importanceLoss = NaN,
    loadLoss = NaN;
  if (opts.auxLosses !== false && r.router === 'top-k') {
    const terms: tf.Scalar[] = [];
    const withLoad = withNoise; // the load loss needs the noisy threshold
    let kthExpert: Int32Array | null = null;
    if (withLoad) {
      // Threshold: the K-th largest noisy logit (its expert is the K-th choice).
      kthExpert = new Int32Array(N);
      for (let t = 0; t < N; t++) kthExpert[t] = plan.expert![t * r.k + r.k - 1]!;
    }
    const host = routerAuxTerm({
      logits,
      gatesCleanValues: withNoise ? null : gateValues,
      noise: withLoad ? { tensor: noise!, values: noiseValues! } : null,
      kthExpert,
      sigma,
      groupSizes: plan.groupSizes,
      members: M,
      weights: { importance: r.aux.importance, load: withLoad ? r.aux.load : 0 },
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
  } else if (r.router === 'top-k' && !withNoise) {
    // No loss tensors (inference): the importance statistic from the clean gates already on the host.
    let sum = 0,
      start = 0;
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
  let gatesClean: tf.Tensor2D | null = withNoise ? null : gates;
  return {
    y,
    aux: aux ?? tf.scalar(0),
    plan,
    stats,
    get gatesClean() {
      return (gatesClean ??= softmax(logits) as tf.Tensor2D);
    },
  };
}
