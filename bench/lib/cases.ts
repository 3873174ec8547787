/**
 * The measured workloads. Each runs in its own process (see run.ts) so that
 * peak RSS belongs to one workload and the wasm thread count can differ.
 * Data are seeded random images; models come from ModelSchema.parse +
 * VisionMoE.init; a training step is what the trainer does (forward, task +
 * aux loss, gradients, Adam update).
 */
import * as tf from '@tensorflow/tfjs-core';
import { engineInfo } from '../../src/engine/index.js';
import { OptimSchema } from '../../src/config/experiment.js';
import { Adam } from '../../src/train/optimizer.js';
import { modelLoss } from '../../src/train/trainer.js';
import { dense2d, denseGelu, encoderBlock, expertMlpCombine, gelu, selfAttention } from '../../src/vmoe/layers.js';
import { hasKernel, VMOE_ENCODER_BLOCK, VMOE_EXPERT_MLP } from '../../src/engine/fused-kernels.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { moeLayer, type MoeWeights } from '../../src/vmoe/moe.js';
import { tokensPerImage } from '../../src/vmoe/config.js';
import { Rng } from '../../src/util/rng.js';
import { benchModelConfig, type BenchModelName } from './configs.js';
import { flopsPerCycleFromFlags, imagesPerSecond, median, peakGflops } from './stats.js';
import { flopsPerImage } from '../../src/vmoe/flops.js';
import fs from 'node:fs';

export interface Timing {
  warmup: number;
  runs: number;
}

/** Median wall time (ms) of `fn` over `runs` calls after `warmup` calls. */
export function timeMedian(fn: () => void, t: Timing): number {
  for (let i = 0; i < t.warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < t.runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * Wall times (ms) of several variants measured round-robin: each round calls every
 * variant once, starting at a different one, so a slow spell of a shared machine hits
 * all variants alike. Returns per variant the median and the minimum over `runs` rounds;
 * the minimum is the least disturbed estimate of a kernel's own cost.
 */
export function timeInterleaved(fns: (() => void)[], t: Timing): { median: number[]; min: number[] } {
  for (let i = 0; i < t.warmup; i++) for (const f of fns) f();
  const times: number[][] = fns.map(() => []);
  for (let r = 0; r < t.runs; r++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (j + r) % fns.length;
      const t0 = performance.now();
      fns[k]!();
      times[k]!.push(performance.now() - t0);
    }
  }
  return { median: times.map((ts) => median(ts)), min: times.map((ts) => Math.min(...ts)) };
}

/** Peak resident set of this process so far, MB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Size of the wasm memory (it never shrinks, so this is its peak), MB; null off wasm. */
export function wasmHeapMb(): number | null {
  const b = tf.backend() as unknown as { wasm?: { wasmMemory?: { buffer: ArrayBufferLike }; HEAPU8?: Uint8Array } };
  const buf = b.wasm?.wasmMemory?.buffer ?? b.wasm?.HEAPU8?.buffer;
  return buf ? buf.byteLength / 2 ** 20 : null;
}

function engineFields() {
  const e = engineInfo();
  return { backend: e.backend, threads: e.threads };
}

/** Seeded images in [0, 1) and labels, as tensors. */
function randomBatch(cfg: { imageSize: number; channels: number; numClasses: number }, batch: number, seed: number) {
  const rng = new Rng(seed);
  const n = batch * cfg.imageSize * cfg.imageSize * cfg.channels;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform();
  const y = new Int32Array(batch);
  for (let i = 0; i < batch; i++) y[i] = rng.int(cfg.numClasses);
  return {
    x: tf.tensor4d(x, [batch, cfg.imageSize, cfg.imageSize, cfg.channels]),
    y: tf.tensor1d(y, 'int32'),
  };
}

export interface ModelRecord {
  name: BenchModelName;
  backend: string;
  threads: number;
  batch: number;
  train_images_per_s: number;
  infer_images_per_s: number;
  peak_rss_mb: number;
  wasm_heap_mb: number | null;
  train_step_ms: number;
  infer_ms: number;
  first_loss: number;
  params: number;
  /** Forward matMul GFLOPs per image (src/vmoe/flops.ts); a training step counts 3× (forward + two backward products). */
  gflop_per_image: number;
  train_gflop_per_s: number;
  infer_gflop_per_s: number;
  /** The machine's peak for this many threads (clock × FLOPs per cycle × threads), and the share of it reached. */
  peak_gflop_per_s: number | null;
  train_share_of_peak: number | null;
  infer_share_of_peak: number | null;
}

/** The machine's float32 peak for `threads` cores from /proc/cpuinfo (clock and ISA flags), or null off Linux. */
export function machinePeakGflops(threads: number): number | null {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1]);
    const flags = (/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/);
    return Number.isFinite(mhz) && mhz > 0 ? peakGflops(mhz, threads, flopsPerCycleFromFlags(flags)) : null;
  } catch {
    return null;
  }
}

/** Training and inference throughput of one model at one batch size. */
export function modelThroughput(name: BenchModelName, batch: number, t: Timing): ModelRecord {
  const cfg = benchModelConfig(name);
  const model = VisionMoE.init(cfg, 0);
  const { x, y } = randomBatch(cfg, batch, 1);
  const rng = new Rng(2);
  const opt = new Adam(OptimSchema.parse({ optimizer: 'adam' }), () => true);
  const vars = [...model.params.values()];
  const nameOf = new Map([...model.params].map(([n, v]) => [v.name, n]));
  let firstLoss = NaN;
  const trainStep = () => {
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const r = model.forward(x as tf.Tensor4D, { train: true, rng });
        return tf.add(modelLoss(r, y as tf.Tensor1D, cfg.numClasses, 0), r.aux) as tf.Scalar;
      }, vars);
      const loss = value.dataSync()[0]!;
      if (Number.isNaN(firstLoss)) firstLoss = loss;
      if (!Number.isFinite(loss)) throw new Error(`${name}: loss is ${loss}`);
      const byName: Record<string, tf.Tensor> = {};
      for (const [vname, g] of Object.entries(grads)) byName[nameOf.get(vname)!] = g;
      opt.apply(model.params, byName, 1e-3);
    });
  };
  const inferStep = () => {
    tf.tidy(() => {
      model.forward(x as tf.Tensor4D, { train: false, auxLosses: false }).logits.dataSync(); // as evaluation (src/eval/outputs.ts) runs it
    });
  };
  const trainMs = timeMedian(trainStep, t);
  const inferMs = timeMedian(inferStep, t);
  const trainIps = imagesPerSecond(batch, trainMs),
    inferIps = imagesPerSecond(batch, inferMs);
  const gflop = flopsPerImage(cfg).total / 1e9;
  const engine = engineFields();
  const peak = machinePeakGflops(engine.threads);
  const rec: ModelRecord = {
    name,
    ...engine,
    batch,
    train_images_per_s: trainIps,
    infer_images_per_s: inferIps,
    peak_rss_mb: peakRssMb(),
    wasm_heap_mb: wasmHeapMb(),
    train_step_ms: trainMs,
    infer_ms: inferMs,
    first_loss: firstLoss,
    params: vars.reduce((s, v) => s + v.size, 0),
    gflop_per_image: gflop,
    train_gflop_per_s: 3 * gflop * trainIps,
    infer_gflop_per_s: gflop * inferIps,
    peak_gflop_per_s: peak,
    train_share_of_peak: peak ? (3 * gflop * trainIps) / peak : null,
    infer_share_of_peak: peak ? (gflop * inferIps) / peak : null,
  };
  opt.dispose();
  model.dispose();
  return rec;
}

/** Σ y ⊙ cot with the gradient cot itself (tf.sum's own gradient would build a ones array of y's size in JavaScript). */
function dotWithCotangent(y: tf.Tensor2D, cot: tf.Tensor2D): tf.Scalar {
  const f = tf.customGrad(((yi: tf.Tensor2D) => ({
    value: tf.sum(tf.mul(yi, cot)),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, cot),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(y) as tf.Scalar;
}

/**
 * Forward + backward of f(x) against a fixed random cotangent, gradients for `params`, as in a
 * training step. Completion is forced by reading one sum over all gradients, not the gradients
 * themselves: copying them to the host (which training never does) cost the MoE layer, with 4×
 * the parameters of the dense MLP, ~0.3 ms more.
 */
function fwdBwd(
  x: tf.Tensor2D,
  params: tf.Variable[],
  f: (x: tf.Tensor2D) => tf.Tensor2D,
  cot: tf.Tensor2D,
): () => void {
  return () => {
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => dotWithCotangent(f(x), cot), params);
      const check = tf.addN([value, ...Object.values(grads).map((g) => tf.sum(g))]).dataSync()[0]!;
      if (!Number.isFinite(check)) throw new Error(`layer study: non-finite loss or gradient (${check})`);
    });
  };
}

function moeSetup(batch: number) {
  const cfg = benchModelConfig('vmoe-tiny');
  const model = VisionMoE.init(cfg, 0);
  const T = tokensPerImage(cfg);
  const N = batch * T;
  const rng = new Rng(3);
  // A variable, so both layers also return dL/dx, as every layer inside a network must (without
  // it the MoE layer skipped its dispatch gradient while the dense MLP still paid for its dx).
  const x = tf.variable(
    tf.tensor2d(
      Float32Array.from({ length: N * cfg.hidden }, () => rng.normal()),
      [N, cfg.hidden],
    ),
  );
  const cot = tf.tensor2d(
    Float32Array.from({ length: N * cfg.hidden }, () => rng.normal()),
    [N, cfg.hidden],
  );
  const p = 'block1/moe';
  const w: MoeWeights = {
    router: model.p(`${p}/router/kernel`),
    w1: model.p(`${p}/w1`),
    b1: model.p(`${p}/b1`),
    w2: model.p(`${p}/w2`),
    b2: model.p(`${p}/b2`),
  };
  const vars = [x, w.router, w.w1, w.b1, w.w2, w.b2] as unknown as tf.Variable[];
  const moe = (c: number) =>
    fwdBwd(
      x,
      vars,
      (xi) => moeLayer(xi, w, model.routingFor({ capacityFactor: c }), { train: true, noiseSeed: 7 }).y,
      cot,
    );
  return { cfg, model, N, x, cot, moe };
}

/**
 * MoE layer vs a dense MLP with the same active FLOPs: every token passes
 * through K experts of width mlp, so the dense MLP has width K·mlp (the MoE
 * additionally pays for routing, dispatch and the capacity slack).
 */
export function moeVsDense(batch: number, t: Timing) {
  const s = moeSetup(batch);
  const { hidden: H, mlpDim } = s.cfg;
  const K = s.cfg.moe.k;
  const rng = new Rng(4);
  const lim1 = Math.sqrt(6 / (H + K * mlpDim));
  const mk = (n: number, lim: number) => Float32Array.from({ length: n }, () => (2 * rng.uniform() - 1) * lim);
  const w1 = tf.variable(tf.tensor2d(mk(H * K * mlpDim, lim1), [H, K * mlpDim]));
  const b1 = tf.variable(tf.zeros([K * mlpDim]) as tf.Tensor1D);
  const w2 = tf.variable(tf.tensor2d(mk(K * mlpDim * H, lim1), [K * mlpDim, H]));
  const b2 = tf.variable(tf.zeros([H]) as tf.Tensor1D);
  const dense = fwdBwd(
    s.x,
    [s.x, w1, b1, w2, b2],
    (xi) => dense2d(gelu(dense2d(xi, w1, b1 as tf.Tensor1D)) as tf.Tensor2D, w2, b2 as tf.Tensor1D),
    s.cot,
  );
  const {
    median: [moeMs, denseMs],
    min: [moeMin, denseMin],
  } = timeInterleaved([s.moe(s.cfg.moe.capacityFactor), dense], t);
  for (const v of [w1, b1, w2, b2]) v.dispose();
  s.model.dispose();
  return {
    name: 'moe-vs-dense',
    ...engineFields(),
    batch,
    tokens: s.N,
    experts: s.cfg.moe.numExperts,
    k: K,
    capacity_factor: s.cfg.moe.capacityFactor,
    dense_width: K * mlpDim,
    moe_ms: moeMs!,
    dense_ms: denseMs!,
    moe_over_dense: moeMs! / denseMs!,
    moe_min_ms: moeMin!,
    dense_min_ms: denseMin!,
    moe_over_dense_min: moeMin! / denseMin!,
    rounds: t.runs,
    peak_rss_mb: peakRssMb(),
  };
}

export const CAPACITY_FACTORS = [0.25, 0.5, 0.75, 1.0, 1.05, 1.25, 1.5];

/** MoE-layer forward+backward time against the capacity factor, relative to factor 1.05. */
export function capacitySweep(batch: number, t: Timing, factors = CAPACITY_FACTORS) {
  const s = moeSetup(batch);
  const all = factors.includes(1.05) ? factors : [...factors, 1.05];
  const { median: ms, min } = timeInterleaved(
    all.map((c) => s.moe(c)),
    t,
  );
  const ref = all.indexOf(1.05);
  s.model.dispose();
  return factors.map((c, i) => ({
    name: 'moe-capacity',
    ...engineFields(),
    batch,
    capacity_factor: c,
    moe_ms: ms[i]!,
    time_vs_1_05: ms[i]! / ms[ref]!,
    moe_min_ms: min[i]!,
    time_vs_1_05_min: min[i]! / min[ref]!,
    rounds: t.runs,
  }));
}

/**
 * GFLOP/s per layer type at a model's shapes (issue #22: ≥ 40 % of the machine's float32 peak in the GEMMs), each
 * timed through the kernel the toolkit runs for it: the dense products (as _FusedMatMul, with bias), the MLP's first
 * product with GELU (VmoeDenseGelu), the backward products of the MLP's first layer (dx, dw: BatchMatMul with a
 * transposed operand), the attention core (VmoeAttention), the whole inference encoder block (VmoeEncoderBlock)
 * and the MoE experts with their combine (VmoeExpertMlp, every token routed to K experts, rows spread evenly).
 * FLOPs count 2 per multiply-add of the products (the attention core: q kᵀ and P v).
 */
export function layerGflops(name: BenchModelName, batch: number, t: Timing): Record<string, unknown>[] {
  const cfg = benchModelConfig(name);
  const { hidden: H, mlpDim: F, heads } = cfg;
  const T = tokensPerImage(cfg);
  const N = batch * T;
  const rng = new Rng(7);
  const rand = (shape: number[], scale = 1) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
      shape,
    );
  const x = rand([N, H]) as tf.Tensor2D;
  const wqkv = rand([H, 3 * H], 0.05) as tf.Tensor2D,
    bqkv = rand([3 * H], 0.1) as tf.Tensor1D;
  const wo = rand([H, H], 0.05) as tf.Tensor2D,
    bo = rand([H], 0.1) as tf.Tensor1D;
  const w1 = rand([H, F], 0.05) as tf.Tensor2D,
    b1 = rand([F], 0.1) as tf.Tensor1D;
  const w2 = rand([F, H], 0.02) as tf.Tensor2D,
    b2 = rand([H], 0.1) as tf.Tensor1D;
  const hidden = rand([N, F]) as tf.Tensor2D;
  const dy = rand([N, F]) as tf.Tensor2D;
  const qkv = rand([N, 3 * H]) as tf.Tensor2D;
  const ones = tf.ones([H]) as tf.Tensor1D,
    zeros = tf.zeros([H]) as tf.Tensor1D;
  const x3 = tf.reshape(x, [batch, T, H]) as tf.Tensor3D;
  const run = (f: () => tf.Tensor | tf.Tensor[]) => () =>
    tf.tidy(() => {
      const out = f();
      (Array.isArray(out) ? out[0]! : out).dataSync();
    });
  const fused = (a: tf.Tensor2D, b: tf.Tensor2D, bias: tf.Tensor1D) => tf.fused.matMul({ a, b, bias });
  const hd = H / heads;
  const cases: [string, number, () => void][] = [
    ['dense q|k|v', 2 * N * H * 3 * H, run(() => fused(x, wqkv, bqkv))],
    ['dense attention out', 2 * N * H * H, run(() => fused(x, wo, bo))],
    ['mlp fc1 + gelu', 2 * N * H * F, run(() => denseGelu(x, w1, b1))],
    ['mlp fc2', 2 * N * F * H, run(() => fused(hidden, w2, b2))],
    [
      'mlp fc1 backward (dx, dw)',
      2 * 2 * N * H * F,
      run(() => [tf.matMul(dy, w1, false, true), tf.matMul(x, dy, true, false)]),
    ],
    ['attention core', 4 * batch * heads * T * T * hd, run(() => selfAttention(qkv, batch, T, heads))],
  ];
  if (hasKernel(VMOE_ENCODER_BLOCK)) {
    const w = { ln1Scale: ones, ln1Bias: zeros, wqkv, bqkv, wo, bo, ln2Scale: ones, ln2Bias: zeros };
    const flops = 2 * N * H * (3 * H + H + 2 * F) + 4 * batch * heads * T * T * hd;
    cases.push([
      'encoder block (inference, fused)',
      flops,
      run(() => encoderBlock(x3, { ...w, mlp: { w1, b1, w2, b2 } }, heads)),
    ]);
  }
  let moeTensors: tf.Tensor[] = [];
  if (cfg.type !== 'vit' && hasKernel(VMOE_EXPERT_MLP)) {
    const E = cfg.moe.numExperts,
      K = cfg.moe.k;
    const R = Math.ceil((N * K) / E);
    const rows = new Int32Array(E),
      tokens = new Int32Array(E * R),
      gateIndex = new Int32Array(E * R);
    for (let t2 = 0; t2 < N; t2++)
      for (let k = 0; k < K; k++) {
        const e = (t2 + k) % E;
        const i = e * R + rows[e]!++;
        tokens[i] = t2 + 1;
        gateIndex[i] = t2 * E + e + 1;
      }
    moeTensors = [
      tf.tensor1d(tokens, 'int32'),
      rand([E, H, F], 0.05),
      rand([E, F], 0.1),
      rand([E, F, H], 0.02),
      rand([E, H], 0.1),
      tf.fill([N, E], 1 / K),
      tf.tensor1d(gateIndex, 'int32'),
    ];
    const [tk, ew1, eb1, ew2, eb2, gates, gi] = moeTensors as [
      tf.Tensor1D,
      tf.Tensor3D,
      tf.Tensor2D,
      tf.Tensor3D,
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor1D,
    ];
    cases.push([
      `moe experts + combine (inference, fused; K=${K})`,
      2 * 2 * N * K * H * F,
      run(() => expertMlpCombine(x, tk, rows, { w1: ew1, b1: eb1, w2: ew2, b2: eb2 }, gates, gi)!),
    ]);
  }
  const engine = engineFields();
  const peak = machinePeakGflops(engine.threads);
  const out = cases.map(([layer, flops, f]) => {
    const ms = timeMedian(f, t);
    const gflops = flops / ms / 1e6;
    return {
      name: `${name} ${layer}`,
      model: name,
      layer,
      ...engine,
      batch,
      rows: N,
      ms,
      gflop: flops / 1e9,
      gflop_per_s: gflops,
      peak_gflop_per_s: peak,
      share_of_peak: peak ? gflops / peak : null,
    };
  });
  for (const v of [x, wqkv, bqkv, wo, bo, w1, b1, w2, b2, hidden, dy, qkv, ones, zeros, ...moeTensors]) v.dispose();
  return out;
}
