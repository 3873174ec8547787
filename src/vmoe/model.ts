/**
 * ViT / V-MoE forward pass (docs/spec/model.md): patch embedding by reshape + matMul, class
 * token, learned positions, pre-LN blocks whose MLP is dense or MoE, final
 * LayerNorm, token or GAP readout, optional pre-logits, head.
 */
import * as tf from '@tensorflow/tfjs-core';
import { modelMembers, moeBlocks, tokensPerImage, type ModelConfig } from './config.js';
import {
  attentionResidual,
  type AttentionHalfWeights,
  canFuseEncoderBlock,
  canFuseTrainingBlock,
  dense,
  dense2d,
  denseGelu,
  dropout,
  encoderBlock,
  type EncoderBlockWeights,
  layerNorm,
  mlpResidual,
  patchEmbed,
  recording,
  selfAttention,
} from './layers.js';
import { moeLayer, type DispatchImpl, type MoeLayerResult, type MoeLayerStats, type RoutingSettings } from './moe.js';
import { initParamValues, paramSpecs } from './params.js';
import {
  concatMembers,
  ensembleLogits,
  fromRoutingOrder,
  membersFirst,
  repeatMembers,
  toRoutingOrder,
} from './members.js';
import type { Rng } from '../util/rng.js';
import { CheckpointError, DataError } from '../util/errors.js';

/**
 * Routing settings that override the model config at inference (capacity factor or absolute capacity, k, Batch
 * Prioritized Routing, images per routing group).
 */
export interface RoutingOverrides {
  capacityFactor?: number;
  capacity?: number | null;
  k?: number;
  batchPriority?: boolean;
  groupImages?: number;
}

/** Options of `VisionMoE.forward`: training mode, the RNG for router noise and dropout, routing overrides. */
export interface ForwardOptions {
  train: boolean;
  /** Drives router noise and dropout; required when train or mcDropout. */
  rng?: Rng;
  routing?: RoutingOverrides;
  impl?: DispatchImpl;
  /** Keep dropout on at evaluation (MC dropout). */
  mcDropout?: boolean;
  /**
   * Build the auxiliary router-loss tensors (default true). Evaluation passes false: `aux` is then 0
   * and the MoE stats keep the importance loss (computed on the host) but not the load loss.
   */
  auxLosses?: boolean;
  /**
   * @internal Called for every MoE layer with its dispatch plan (routing analysis, tests). Rows are (image, token,
   * member).
   */
  onMoeLayer?: (block: number, layer: MoeLayerResult) => void;
}

/**
 * What `VisionMoE.forward` returns: logits (B, classes), pre-logits and per-MoE-layer router results and auxiliary
 * losses.
 */
export interface ForwardResult {
  /** (B, classes). For E³: log p̄ = logsumexp_m log_softmax(member logits) − log M. */
  logits: tf.Tensor2D;
  /** (B, D). For E³: the members' pre-logits concatenated, (B, M·D). */
  preLogits: tf.Tensor2D;
  /** E³ only: (M, B, classes). */
  memberLogits?: tf.Tensor3D;
  aux: tf.Scalar;
  moe: (MoeLayerStats & { block: number })[];
}

/** The model's parameters by name (e.g. `block3/moe/router/kernel`), as TensorFlow.js variables. */
export type ParamStore = Map<string, tf.Variable>;

export interface BlockContext {
  train: boolean;
  rng?: Rng;
  routing: RoutingSettings;
  impl: DispatchImpl;
  dropSeed: () => number | null;
  /** Whether dropout is on (training or MC dropout, rate > 0): the fused inference block has none. */
  dropout?: boolean;
  auxTerms: tf.Scalar[];
  auxLosses: boolean;
  stats: ForwardResult['moe'];
  /** Rows per image in the current activations (1 before the E³ repeat, M after; default 1). */
  members?: number;
  onMoeLayer?: (block: number, layer: MoeLayerResult) => void;
}

/**
 * Trainable variable from host data. tfjs variable names are process-global, so
 * they are left to tfjs (several models, e.g. ensemble members, live side by
 * side); our parameter names are the ParamStore keys.
 */
export function makeVariable(data: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(data, shape, 'float32');
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/**
 * A Vision Transformer whose MLP blocks may be sparse MoE layers: ViT (`type: 'vit'`), V-MoE (`'vmoe'`) or E³, the
 * partitioned batch ensemble of a V-MoE (`'e3'`). Build with `VisionMoE.init(cfg, seed)` or
 * `VisionMoE.fromValues(cfg, values)`; run with `forward(images, opts)` on (B, H, W, C) images.
 */
export class VisionMoE {
  readonly cfg: ModelConfig;
  readonly params: ParamStore;
  readonly moeBlockSet: Set<number>;
  /**
   * Per attention block, the [query | key | value] kernels and biases concatenated once for inference,
   * with the tensor identities (dataIds) they were made from: an optimiser step or a load assigns new
   * data to the variables, which changes their dataIds and so remakes the concat on the next use.
   */
  private readonly qkvCache = new Map<string, { from: object[]; w: tf.Tensor2D; b: tf.Tensor1D }>();

  constructor(cfg: ModelConfig, params: ParamStore) {
    this.cfg = cfg;
    this.params = params;
    this.moeBlockSet = new Set(moeBlocks(cfg));
  }

  /** A new model for `cfg` with freshly initialised parameters, seeded by `seed`. */
  static init(cfg: ModelConfig, seed: number): VisionMoE {
    const params: ParamStore = new Map();
    for (const [name, v] of initParamValues(cfg, seed)) {
      params.set(name, makeVariable(v.data, v.shape));
    }
    return new VisionMoE(cfg, params);
  }

  /** Builds a model from named host arrays (e.g. a checkpoint); shapes must match the config. */
  static fromValues(cfg: ModelConfig, values: Map<string, { shape: number[]; data: Float32Array }>): VisionMoE {
    const params: ParamStore = new Map();
    for (const [name, spec] of paramSpecs(cfg)) {
      const v = values.get(name);
      if (!v) throw new CheckpointError(`missing parameter ${name}`);
      if (v.shape.join(',') !== spec.shape.join(',')) {
        throw new CheckpointError(`parameter ${name} has shape [${v.shape}] but the config expects [${spec.shape}]`);
      }
      params.set(name, makeVariable(v.data, v.shape));
    }
    return new VisionMoE(cfg, params);
  }

  /** @internal The parameter called `name`. */
  p<T extends tf.Tensor = tf.Tensor>(name: string): T {
    const v = this.params.get(name);
    if (!v) throw new Error(`VisionMoE.p: the model has no parameter ${name}`);
    return v as unknown as T;
  }

  /** @internal The config's routing settings with `over` applied. */
  routingFor(over: RoutingOverrides = {}): RoutingSettings {
    const m = this.cfg.moe;
    const T = tokensPerImage(this.cfg);
    return {
      router: m.router,
      k: over.k ?? m.k,
      capacityFactor: over.capacityFactor ?? m.capacityFactor,
      capacity: over.capacity !== undefined ? over.capacity : over.capacityFactor !== undefined ? null : m.capacity,
      rounding: m.capacityRounding,
      groupSize: (over.groupImages ?? m.groupImages) * T * modelMembers(this.cfg),
      batchPriority: over.batchPriority ?? m.batchPriority,
      noiseStd: m.noiseStd,
      aux: m.auxLoss,
      dispatchBfloat16: m.dispatchBfloat16,
    };
  }

  /** @internal images (B, H, W, C) → patch tokens (B, g², p²C), patches flattened row-major (row, col, channel). */
  patchify(images: tf.Tensor4D): tf.Tensor3D {
    const { patchSize: p, imageSize, channels: C } = this.cfg;
    const B = images.shape[0];
    const g = imageSize / p;
    const rows = tf.reshape(images, [B * g, p, g, p * C]); // (B·g, p, g, p·C)
    const patches = tf.transpose(rows, [0, 2, 1, 3]); // (B·g, g, p, p·C)
    return tf.reshape(patches, [B, g * g, p * p * C]);
  }

  /** @internal Token embeddings before the first block: (B, T, H). */
  embed(images: tf.Tensor4D): tf.Tensor3D {
    const { hidden: H, imageSize, channels } = this.cfg;
    const [B, h, w, c] = images.shape;
    if (h !== imageSize || w !== imageSize || c !== channels) {
      throw new DataError(
        `model expects images (B, ${imageSize}, ${imageSize}, ${channels}), got (${images.shape.join(', ')})`,
      );
    }
    const cls = this.cfg.readout === 'token' ? this.p('cls') : null;
    const fused = patchEmbed(
      images,
      this.p('embed/kernel'),
      this.p('embed/bias'),
      cls,
      this.p('pos'),
      this.cfg.patchSize,
    );
    if (fused) return fused; // inference: the lines below in one kernel
    let x = dense(this.patchify(images), this.p('embed/kernel'), this.p('embed/bias')) as tf.Tensor3D; // (B, g², H)
    if (this.cfg.readout === 'token') {
      // A broadcasting add, not tf.tile: tile's gradient is one slice and one add per image.
      const cls = tf.add(tf.zeros([B, 1, H]), tf.reshape(this.p('cls'), [1, 1, H]));
      x = tf.concat([cls, x], 1) as tf.Tensor3D;
    }
    return tf.add(x, this.p('pos')) as tf.Tensor3D;
  }

  /** @internal Multi-head self-attention of the block named `prefix`: (B, T, H) → (B, T, H). */
  attention(x: tf.Tensor3D, prefix: string): tf.Tensor3D {
    const [B, T, H] = x.shape;
    const nh = this.cfg.heads;
    const x2 = tf.reshape(x, [B * T, H]) as tf.Tensor2D;
    const { w: wqkv, b: bqkv } = this.qkvWeights(prefix);
    const qkv = dense2d(x2, wqkv, bqkv); // (B·T, 3H), columns [q | k | v], each head-major
    const merged = selfAttention(qkv, B, T, nh); // (B·T, H)
    return tf.reshape(dense2d(merged, this.p(`${prefix}/out/kernel`), this.p(`${prefix}/out/bias`)), [B, T, H]);
  }

  /**
   * @internal The block's fused projection weights (H, 3H) and bias (3H), columns [q | k | v]. Under a
   * gradient tape they are concatenated per call (the gradient flows back through the concat to the three
   * kernels); outside one (evaluation) the concat is made once and reused while the variables keep their data.
   */
  qkvWeights(prefix: string): { w: tf.Tensor2D; b: tf.Tensor1D } {
    const parts = ['query', 'key', 'value'];
    const kernels = parts.map((n) => this.p(`${prefix}/${n}/kernel`));
    const biases = parts.map((n) => this.p(`${prefix}/${n}/bias`));
    const make = () => ({ w: tf.concat(kernels, 1) as tf.Tensor2D, b: tf.concat(biases, 0) as tf.Tensor1D });
    if (recording()) return make();
    const from = [...kernels, ...biases].map((t) => t.dataId);
    const hit = this.qkvCache.get(prefix);
    if (hit?.from.every((d, i) => d === from[i])) return hit;
    if (hit) {
      hit.w.dispose();
      hit.b.dispose();
    }
    // tf.keep: the caller's tf.tidy must not free the cached concat; dispose() and the next miss do.
    const made = make();
    const entry = { from, w: tf.keep(made.w), b: tf.keep(made.b) };
    this.qkvCache.set(prefix, entry);
    return entry;
  }

  /** @internal One encoder block; MoE blocks append their stats. */
  block(x: tf.Tensor3D, b: number, ctx: BlockContext): tf.Tensor3D {
    const [B, T, H] = x.shape;
    const p = `block${b}`;
    const rate = this.cfg.dropout;
    const moe = this.moeBlockSet.has(b);
    if (!ctx.dropout && canFuseEncoderBlock(x)) {
      // Inference: the block (or an MoE block's attention half) in one kernel, tiled over the batch.
      const w = this.blockWeights(p, !moe);
      if (!moe) return encoderBlock(x, w, this.cfg.heads) as tf.Tensor3D;
      const [x1, h2] = encoderBlock(x, w, this.cfg.heads) as [tf.Tensor3D, tf.Tensor2D];
      return tf.add(x1, tf.reshape(this.moeMlp(h2, b, B, T, ctx), [B, T, H])) as tf.Tensor3D;
    }
    if (!ctx.dropout && canFuseTrainingBlock(x)) {
      // Training without dropout: each half of the block one node on the gradient tape (the same kernels); an MoE
      // block's MLP half goes on below as in the op-by-op block.
      const a = `${p}/attn`;
      const attn: AttentionHalfWeights = {
        ln1Scale: this.p(`${p}/ln1/scale`),
        ln1Bias: this.p(`${p}/ln1/bias`),
        wq: this.p(`${a}/query/kernel`),
        wk: this.p(`${a}/key/kernel`),
        wv: this.p(`${a}/value/kernel`),
        bq: this.p(`${a}/query/bias`),
        bk: this.p(`${a}/key/bias`),
        bv: this.p(`${a}/value/bias`),
        wo: this.p(`${a}/out/kernel`),
        bo: this.p(`${a}/out/bias`),
      };
      x = attentionResidual(x, attn, this.cfg.heads);
      if (!moe) {
        const ln2 = { ln2Scale: this.p<tf.Tensor1D>(`${p}/ln2/scale`), ln2Bias: this.p<tf.Tensor1D>(`${p}/ln2/bias`) };
        return mlpResidual(x, { ...ln2, ...this.mlpWeights(p) });
      }
    } else {
      const h1 = layerNorm(x, this.p(`${p}/ln1/scale`), this.p(`${p}/ln1/bias`)) as tf.Tensor3D;
      x = tf.add(x, dropout(this.attention(h1, `${p}/attn`), rate, ctx.dropSeed()));
    }
    const h2 = tf.reshape(layerNorm(x, this.p(`${p}/ln2/scale`), this.p(`${p}/ln2/bias`)), [B * T, H]) as tf.Tensor2D;
    let y: tf.Tensor2D;
    if (moe) {
      y = this.moeMlp(h2, b, B, T, ctx);
    } else {
      const hidden = denseGelu(h2, this.p(`${p}/mlp/fc1/kernel`), this.p(`${p}/mlp/fc1/bias`));
      y = dense2d(
        dropout(hidden, rate, ctx.dropSeed()) as tf.Tensor2D,
        this.p(`${p}/mlp/fc2/kernel`),
        this.p(`${p}/mlp/fc2/bias`),
      );
    }
    return tf.add(x, tf.reshape(dropout(y, rate, ctx.dropSeed()), [B, T, H])) as tf.Tensor3D;
  }

  /** @internal The weights of block `prefix` (`block3`) for the fused inference block; the MLP's for a dense one. */
  blockWeights(prefix: string, mlp: boolean): EncoderBlockWeights {
    const { w: wqkv, b: bqkv } = this.qkvWeights(`${prefix}/attn`);
    return {
      ln1Scale: this.p(`${prefix}/ln1/scale`),
      ln1Bias: this.p(`${prefix}/ln1/bias`),
      wqkv,
      bqkv,
      wo: this.p(`${prefix}/attn/out/kernel`),
      bo: this.p(`${prefix}/attn/out/bias`),
      ln2Scale: this.p(`${prefix}/ln2/scale`),
      ln2Bias: this.p(`${prefix}/ln2/bias`),
      mlp: mlp ? this.mlpWeights(prefix) : undefined,
    };
  }

  /** @internal The dense MLP's weights of block `prefix`. */
  mlpWeights(prefix: string): { w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D } {
    return {
      w1: this.p(`${prefix}/mlp/fc1/kernel`),
      b1: this.p(`${prefix}/mlp/fc1/bias`),
      w2: this.p(`${prefix}/mlp/fc2/kernel`),
      b2: this.p(`${prefix}/mlp/fc2/bias`),
    };
  }

  /** @internal The MoE layer of block b on its input h2 (B·T, H) in layout rows → (B·T, H); appends its stats. */
  moeMlp(h2: tf.Tensor2D, b: number, B: number, T: number, ctx: BlockContext): tf.Tensor2D {
    const H = h2.shape[1];
    const p = `block${b}`;
    const M = ctx.members ?? 1;
    const E = this.cfg.moe.numExperts;
    const router = tf.reshape(this.p(`${p}/moe/router/kernel`), [H, E]) as tf.Tensor2D;
    const r = moeLayer(
      this.toRoutingOrder(h2, B / M, T, M),
      {
        router,
        w1: this.p(`${p}/moe/w1`),
        b1: this.p(`${p}/moe/b1`),
        w2: this.p(`${p}/moe/w2`),
        b2: this.p(`${p}/moe/b2`),
      },
      ctx.routing,
      {
        train: ctx.train,
        noiseSeed: ctx.train && ctx.rng ? ctx.rng.seed() : null,
        impl: ctx.impl,
        members: M,
        auxLosses: ctx.auxLosses,
      },
    );
    ctx.auxTerms.push(r.aux);
    ctx.stats.push({ ...r.stats, block: b });
    ctx.onMoeLayer?.(b, r);
    return this.fromRoutingOrder(r.y, B / M, T, M);
  }

  /** @internal Final norm, readout, pre-logits and head: (B, T, H) → logits (B, classes), representation (B, D). */
  head(x: tf.Tensor3D): { logits: tf.Tensor2D; preLogits: tf.Tensor2D } {
    const [B, , H] = x.shape;
    const normed = layerNorm(x, this.p('norm/scale'), this.p('norm/bias')) as tf.Tensor3D;
    let repr: tf.Tensor2D =
      this.cfg.readout === 'token' ? tf.reshape(tf.slice(normed, [0, 0, 0], [B, 1, H]), [B, H]) : tf.mean(normed, 1);
    if (this.cfg.preLogits !== null)
      repr = tf.tanh(dense2d(repr, this.p('prelogits/kernel'), this.p('prelogits/bias')));
    const logits = dense2d(repr, this.p('head/kernel'), this.p('head/bias'));
    return { logits, preLogits: repr };
  }

  /**
   * Run the model on a batch of images (B, H, W, C), pixels scaled as in training; returns logits (B, classes),
   * pre-logits and the MoE layers' router statistics. The caller disposes the returned tensors (or runs it inside
   * `tf.tidy`).
   */
  forward(images: tf.Tensor4D, opts: ForwardOptions): ForwardResult {
    const useDropout = (opts.train || opts.mcDropout === true) && this.cfg.dropout > 0;
    if ((opts.train || useDropout) && !opts.rng)
      throw new Error('forward: an rng is required in training and MC-dropout mode');
    const ctx: BlockContext = {
      train: opts.train,
      rng: opts.rng,
      routing: this.routingFor(opts.routing),
      impl: opts.impl ?? 'gather',
      dropSeed: () => (useDropout ? opts.rng!.seed() : null),
      dropout: useDropout,
      auxTerms: [],
      auxLosses: opts.auxLosses !== false,
      stats: [],
      members: 1,
      onMoeLayer: opts.onMoeLayer,
    };
    const B = images.shape[0];
    const M = modelMembers(this.cfg);
    const firstMoe = Math.min(...this.moeBlockSet);
    let x = this.embed(images);
    x = dropout(x, this.cfg.dropout, ctx.dropSeed()) as tf.Tensor3D;
    for (let b = 0; b < this.cfg.depth; b++) {
      if (M > 1 && b === firstMoe) {
        x = this.repeatMembers(x, M);
        ctx.members = M;
      }
      x = this.block(x, b, ctx);
    }
    const aux = ctx.auxTerms.length ? (tf.addN(ctx.auxTerms) as tf.Scalar) : tf.scalar(0);
    const { logits, preLogits } = this.head(x);
    if (M === 1) return { logits, preLogits, aux, moe: ctx.stats };
    const memberLogits = this.membersFirst(logits, B, M); // (M, B, K)
    const memberPre = this.membersFirst(preLogits, B, M); // (M, B, D)
    return {
      logits: ensembleLogits(memberLogits),
      preLogits: concatMembers(memberPre),
      memberLogits,
      aux,
      moe: ctx.stats,
    };
  }

  // The member layout helpers of src/ensembles, bound to this model's configured layout.

  /** @internal (B, T, H) → (B·M, T, H). */
  repeatMembers(x: tf.Tensor3D, M: number): tf.Tensor3D {
    return repeatMembers(x, M, this.cfg.ensemble.layout);
  }

  /** @internal (B·M, D) → (M, B, D). */
  membersFirst(t: tf.Tensor2D, B: number, M: number): tf.Tensor3D {
    return membersFirst(t, B, M, this.cfg.ensemble.layout);
  }

  /** @internal Layout rows (B·M·T, H) → (image, token, member) rows. */
  toRoutingOrder(h: tf.Tensor2D, B: number, T: number, M: number): tf.Tensor2D {
    return toRoutingOrder(h, B, T, M, this.cfg.ensemble.layout);
  }

  /** @internal (image, token, member) rows → layout rows (B·M·T, H). */
  fromRoutingOrder(y: tf.Tensor2D, B: number, T: number, M: number): tf.Tensor2D {
    return fromRoutingOrder(y, B, T, M, this.cfg.ensemble.layout);
  }

  /** Host copies of all parameters (for checkpoints). */
  values(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.params) out.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
    return out;
  }

  /** Free the parameters' tensor memory; the model is unusable afterwards. */
  dispose(): void {
    for (const c of this.qkvCache.values()) {
      c.w.dispose();
      c.b.dispose();
    }
    this.qkvCache.clear();
    for (const v of this.params.values()) v.dispose();
  }
}
