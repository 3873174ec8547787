/**
 * The training loop: seeded data order, router noise and dropout; Adam(W) or
 * SGD with momentum, warmup + decay, optional gradient accumulation; periodic
 * validation; atomic checkpoints that let --resume continue with exactly the
 * losses an uninterrupted run would have had.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BatchSampler, loadDataset, makeBatch, type Batch, type ImageDataset } from '../data/index.js';
import { keyedRng, mixupBatch } from '../data/preprocess.js';
import { openStreamingSource, StreamingBatches } from '../data/pipeline.js';
import { engineInfo } from '../engine/index.js';
import { meanMemberLoss } from '../ensembles/combine.js';
import { isReshapedRouterKernel } from '../ensembles/from-vmoe.js';
import { computeOutputs } from '../vmoe/outputs.js';
import { accuracy, nll } from '../metrics/likelihood.js';
import { probsFromLogits } from '../metrics/softmax.js';
import { VisionMoE, type ForwardResult } from '../vmoe/model.js';
import { paramSpecs } from '../vmoe/params.js';
import { gridOfTokens, resamplePositionEmbedding } from '../vmoe/posembed.js';
import { Rng, type RngState } from '../util/rng.js';
import { learningRate, makeOptimizer } from './optimizer.js';
import {
  assertFiniteCheckpoint,
  checkpointStepOf,
  describeNonFinite,
  findNonFinite,
  latestCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  type NamedArray,
} from '../checkpoint/format.js';
import { parseExperiment, type ExperimentConfig } from '../config/experiment.js';
import type { SamplerState } from '../data/batches.js';
import { Progress } from './progress.js';
import { runRecord } from '../engine/record.js';
import { CheckpointError, TrainingError, type VmoeErrorOptions } from '../util/errors.js';
import { JsonlAppender, readJsonl, writeFileWhole } from '../util/output-dir.js';
import { openRunFolder, runFilesIn } from './run-folder.js';
import { signalExitCode, type StopRequest } from './interrupt.js';

/** A training stopped by SIGINT / SIGTERM after saving a checkpoint at the current step; exits 130 / 143. */
export class TrainingInterrupted extends TrainingError {
  constructor(
    readonly signal: NodeJS.Signals,
    readonly step: number,
    readonly checkpoint: string | null,
    message: string,
    options: VmoeErrorOptions = {},
  ) {
    super(message, { ...options, exitCode: signalExitCode(signal) });
  }
}

/** Options of `train`: the config, the run folder, resume or fine-tune from a checkpoint, and logging. */
export interface TrainOptions {
  config: ExperimentConfig;
  outDir: string;
  /** Continue from the latest checkpoint in outDir. */
  resume?: boolean;
  /** Move a run already in outDir aside to `<outDir>.old-<timestamp>` (never deleted) and start afresh. */
  overwrite?: boolean;
  /**
   * Checked after every step: once its `signal` is set (see stopOnSignals in interrupt.ts) the run saves a
   * checkpoint at the current step and throws TrainingInterrupted.
   */
  stop?: StopRequest;
  /** The command that resumes this run, for the messages (default "the same command with --resume"). */
  resumeCommand?: string;
  /** The command recorded in the run folder's lock (default "vmoe train"). */
  command?: string;
  /** Initialise from another run's checkpoint (fine-tuning). */
  initFrom?: string;
  /** The classification head when fine-tuning (see HeadInit); default 'auto'. */
  head?: HeadInit;
  /** Stop (after checkpointing) once this step is reached — used to test interruption. */
  stopAtStep?: number;
  quiet?: boolean;
  /** Give the event loop a turn when this many ms have passed since the last one (default 1000). */
  yieldEveryMs?: number;
  /** Called after every step with the step reached, train.steps and the step's images/s (a job queue's progress). */
  onStep?: (step: number, total: number, imagesPerSecond: number) => void;
}

/** Accuracy and NLL of a model on one split at a training step. */
export interface EvalSummary {
  step: number;
  split: string;
  n: number;
  accuracy: number;
  nll: number;
}

/**
 * What `train` returns: the final step, the losses, the last validation summary, the last checkpoint written and
 * the speed.
 */
export interface TrainResult {
  step: number;
  losses: number[];
  lastVal: EvalSummary | null;
  checkpoint: string;
  seconds: number;
  imagesPerSecond: number;
  /** Set when a resumed run had already reached train.steps: nothing was trained or written. */
  alreadyFinished?: boolean;
}

interface RunState {
  step: number;
  rng: RngState;
  augRng: RngState;
  sampler: SamplerState;
  optT: number;
}

/**
 * Mean softmax cross-entropy of logits (B, K) against integer labels (B), with label smoothing `smoothing` in [0,
 * 1).
 */
export function classificationLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  numClasses: number,
  smoothing: number,
): tf.Scalar {
  const onehot = tf.oneHot(labels, numClasses);
  const targets = smoothing > 0 ? tf.add(tf.mul(onehot, 1 - smoothing), smoothing / numClasses) : onehot;
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/** Task loss of a forward result: E³ trains each member on its own cross-entropy, averaged over members. */
export function modelLoss(r: ForwardResult, labels: tf.Tensor1D, numClasses: number, smoothing: number): tf.Scalar {
  const loss = (logits: tf.Tensor2D, y: tf.Tensor1D) => classificationLoss(logits, y, numClasses, smoothing);
  return r.memberLogits ? meanMemberLoss(r.memberLogits, labels, loss) : loss(r.logits, labels);
}

/** Per-MoE-layer routing statistics of one training step (averaged over its micro-batches). */
export interface MoeStepStats {
  block: number;
  drop: number;
  load: number[];
  importance: number;
  loadLoss: number;
}

/**
 * Gradients of one step's loss (task + auxiliary) with respect to `vars`, keyed by variable name, computed in
 * `accumSteps` equal micro-batches of consecutive rows of x (B, H, W, C) and summed. Each micro-batch loss is
 * weighted 1/accumSteps, so the sum is the gradient of the mean over micro-batches, which is the full batch's loss
 * exactly when the MoE routing groups lie within micro-batches (the config requires it) and no noise or dropout
 * draws differ. Losses returned are the micro-batch means averaged. Call inside tf.tidy.
 */
export function stepGradients(
  model: VisionMoE,
  vars: tf.Variable[],
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  opts: {
    numClasses: number;
    labelSmoothing: number;
    accumSteps: number;
    rng: Rng;
    /** Mixup: the loss is λ·L(y) + (1 − λ)·L(y2), y2 the labels of the images mixed in (docs/data.md). */
    mix?: { y2: tf.Tensor1D; lambda: number };
  },
): { grads: Map<string, tf.Tensor>; task: number; aux: number; moe: MoeStepStats[] } {
  const A = opts.accumSteps;
  const B = x.shape[0];
  if (B % A !== 0) throw new TrainingError(`a batch of ${B} does not split into ${A} equal micro-batches`);
  const b = B / A;
  const sums = new Map<string, tf.Tensor>();
  let task = 0,
    aux = 0;
  const stats: MoeStepStats[][] = [];
  for (let i = 0; i < A; i++) {
    const xi = A === 1 ? x : tf.slice(x, [i * b, 0, 0, 0], [b, -1, -1, -1]);
    const yi = A === 1 ? y : tf.slice(y, [i * b], [b]);
    const mix = opts.mix;
    const y2i = mix ? (A === 1 ? mix.y2 : tf.slice(mix.y2, [i * b], [b])) : null;
    const { grads } = tf.variableGrads(() => {
      const r = model.forward(xi, { train: true, rng: opts.rng });
      let t = modelLoss(r, yi, opts.numClasses, opts.labelSmoothing);
      if (mix && y2i) {
        const other = modelLoss(r, y2i, opts.numClasses, opts.labelSmoothing);
        t = tf.add(tf.mul(t, mix.lambda), tf.mul(other, 1 - mix.lambda)) as tf.Scalar;
      }
      task += t.dataSync()[0]! / A;
      aux += r.aux.dataSync()[0]! / A;
      stats.push(
        r.moe.map((s) => ({
          block: s.block,
          drop: s.dropFraction,
          load: s.expertLoad,
          importance: s.importanceLoss,
          loadLoss: s.loadLoss,
        })),
      );
      const loss = tf.add(t, r.aux) as tf.Scalar;
      return A === 1 ? loss : (tf.div(loss, A) as tf.Scalar);
    }, vars);
    for (const [name, g] of Object.entries(grads)) {
      const prev = sums.get(name);
      if (!prev) sums.set(name, g);
      else {
        sums.set(name, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      }
    }
    if (A > 1) {
      xi.dispose();
      yi.dispose();
      y2i?.dispose();
    }
  }
  const mean = (f: (s: MoeStepStats) => number, l: number) => stats.reduce((a, s) => a + f(s[l]!), 0) / A;
  const moe = stats[0]!.map((s0, l) => ({
    block: s0.block,
    drop: mean((s) => s.drop, l),
    load: s0.load.map((_, e) => mean((s) => s.load[e]!, l)),
    importance: mean((s) => s.importance, l),
    loadLoss: mean((s) => s.loadLoss, l),
  }));
  return { grads: sums, task, aux, moe };
}

/** Accuracy and NLL of `model` on the data set `ds`, batched as `cfg.eval` says. */
export function evaluateSplit(model: VisionMoE, ds: ImageDataset, cfg: ExperimentConfig, step: number): EvalSummary {
  const out = computeOutputs(model, ds, { batchSize: cfg.eval.batchSize, scale: cfg.data.scale });
  const logits = { data: out.logits, n: out.n, k: out.numClasses, m: out.members };
  return {
    step,
    split: ds.split,
    n: ds.n,
    accuracy: accuracy(probsFromLogits(logits), out.labels),
    nll: nll(logits, out.labels),
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The head when fine-tuning: 'reinit' starts it afresh, 'keep' copies it (when its shape fits), 'auto'
 * starts it afresh when the data set differs from the checkpoint's — its classes are other classes even
 * when their number is the same (Fashion-MNIST → MNIST) — and keeps it on the same data set (e.g. V-MoE → E³).
 * A head whose shape changes (another class count) is always new.
 */
export type HeadInit = 'auto' | 'reinit' | 'keep';

export interface HeadDecision {
  reinit: boolean;
  reason: string;
}

const HEAD_PREFIX = 'head/';

/** Decides whether the checkpoint's head is carried over; `dataset` is the data set being fine-tuned on. */
export function decideHead(mode: HeadInit, sourceDataset: string | null, dataset: string | null): HeadDecision {
  if (mode === 'reinit') return { reinit: true, reason: 'asked for (--reinit-head)' };
  if (mode === 'keep') return { reinit: false, reason: 'asked for (--no-reinit-head)' };
  if (sourceDataset === null || dataset === null) return { reinit: false, reason: 'checkpoint data set unknown: kept' };
  return sourceDataset === dataset
    ? { reinit: false, reason: `same data set (${dataset}): kept` }
    : { reinit: true, reason: `data set changed (${sourceDataset} → ${dataset})` };
}

/**
 * Copies matching parameters from a checkpoint into a freshly initialised model (fine-tuning).
 * `dataset` is the data set the model will be fine-tuned on (for the 'auto' head rule).
 */
export function initFromCheckpoint(
  model: VisionMoE,
  file: string,
  opts: { head?: HeadInit; dataset?: string } = {},
): { copied: string[]; resized: string[]; fresh: string[]; head: HeadDecision } {
  const ck = loadCheckpoint(file);
  assertFiniteCheckpoint(ck);
  const saved = (ck.meta.config as { data?: { dataset?: unknown } } | undefined)?.data?.dataset;
  const head = decideHead(opts.head ?? 'auto', typeof saved === 'string' ? saved : null, opts.dataset ?? null);
  const copied: string[] = [],
    resized: string[] = [],
    fresh: string[] = [];
  const misfits: string[] = [];
  for (const [name, v] of model.params) {
    const src = ck.tensors[`params/${name}`];
    // a head left out keeps the model's own initialisation (zero kernel, configured bias)
    if (!src || (head.reinit && name.startsWith(HEAD_PREFIX))) {
      fresh.push(name);
      continue;
    }
    if (
      src.shape.join(',') !== v.shape.join(',') &&
      !restartsOnShapeChange(name, opts.head ?? 'auto') &&
      !isReshapedRouterKernel(name, src.data.length, v.size) &&
      !(name === 'pos' && src.shape[1] === v.shape[1] && gridOfTokens(src.shape[0]!) !== null)
    ) {
      misfits.push(`${name} is [${src.shape}] in the checkpoint but [${v.shape}] in the config`);
      continue;
    }
    if (src.shape.join(',') === v.shape.join(',')) {
      v.assign(tf.tensor(src.data as Float32Array, src.shape));
      copied.push(name);
    } else if (isReshapedRouterKernel(name, src.data.length, v.size)) {
      // V-MoE → E³ (see src/ensembles/from-vmoe.ts): member m inherits the experts and router columns [m·E/M, (m+1)·E/M).
      v.assign(tf.tensor(src.data as Float32Array, v.shape));
      resized.push(name);
    } else if (name === 'pos') {
      // same width, another patch grid: resampled on the grid, class row kept (src/vmoe/posembed.ts)
      const [T, H] = v.shape as [number, number];
      const own = v.dataSync() as Float32Array;
      const data = resamplePositionEmbedding(
        src.data as Float32Array,
        src.shape[0]!,
        H,
        T,
        model.cfg.readout === 'token',
        own,
      );
      v.assign(tf.tensor2d(data, [T, H]));
      resized.push(name);
    } else {
      fresh.push(name);
    }
  }
  if (misfits.length) {
    const headOnly = misfits.every((m) => m.startsWith(HEAD_PREFIX));
    throw new CheckpointError(
      `${file}: ${misfits.length} parameter${misfits.length > 1 ? 's do' : ' does'} not fit the model config: ${misfits.slice(0, 8).join('; ')}${misfits.length > 8 ? `; … and ${misfits.length - 8} more` : ''}`,
      {
        file,
        hint: headOnly
          ? 'pass --reinit-head (instead of --no-reinit-head) to start the head afresh for the new class count'
          : `fine-tune with the checkpoint's model settings (model.hidden, model.mlpDim, model.moe.numExperts …; \`vmoe info ${file}\` shows them)${misfits.some((m) => m.startsWith(HEAD_PREFIX)) ? '; --reinit-head starts the head afresh' : ''}`,
      },
    );
  }
  return { copied, resized, fresh, head };
}

/**
 * Parameters fine-tuning starts afresh when their shape changed: the patch embedding (another patch size or
 * channel count) and, unless --no-reinit-head asked to keep it, the head (another class count).
 */
function restartsOnShapeChange(name: string, head: HeadInit): boolean {
  return name.startsWith('embed/') || (name.startsWith(HEAD_PREFIX) && head !== 'keep');
}

/**
 * A saved config with the defaults of this version filled in, so a run saved before a setting existed still
 * compares equal to the same config given today; a config this version cannot parse is returned as it is (and
 * then differs).
 */
function withDefaults(raw: unknown): unknown {
  try {
    return parseExperiment(raw, 'saved config');
  } catch {
    return raw;
  }
}

/**
 * Trains a model into `opts.outDir`, which this process locks for the whole run (a second writer is
 * refused). A folder holding another run's files needs `resume` or `overwrite`; a resumed run that is
 * already finished returns `alreadyFinished` and changes nothing.
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = (s: string) => {
    if (!opts.quiet) process.stderr.write(s + '\n');
  };
  const folder = openRunFolder(opts.outDir, { resume: opts.resume, overwrite: opts.overwrite, command: opts.command });
  try {
    for (const n of folder.notes) log(`[vmoe] ${n}`);
    return await trainLocked(opts, log);
  } finally {
    folder.lock.release();
  }
}

async function trainLocked(opts: TrainOptions, log: (s: string) => void): Promise<TrainResult> {
  const cfg = opts.config;
  const ckptDir = path.join(opts.outDir, 'checkpoints');
  const metricsPath = path.join(opts.outDir, 'metrics.jsonl');
  const resumeCommand = opts.resumeCommand ?? 'the same command with --resume';

  const existing = latestCheckpoint(ckptDir);
  // Resuming: the checkpoint is checked (finite, same config) and a finished run left as it is, before any work.
  const ck = opts.resume && existing ? loadCheckpoint(existing) : null;
  if (ck && existing) {
    assertFiniteCheckpoint(ck, '');
    const saved = withDefaults(ck.meta.config) as ExperimentConfig;
    for (const key of ['model', 'data', 'optim', 'seed'] as const) {
      if (!sameJson(saved[key], cfg[key])) {
        throw new TrainingError(
          `cannot resume ${existing}: its "${key}" config differs from the one given; resume with the run's own config (${path.join(opts.outDir, 'config.json')})`,
        );
      }
    }
    const savedStep = (ck.meta.state as RunState).step;
    if (savedStep >= cfg.train.steps) {
      log(
        `[vmoe] ${opts.outDir} is already finished: ${path.basename(existing)} is at step ${savedStep} of train.steps=${cfg.train.steps}; nothing was changed`,
      );
      return {
        step: savedStep,
        losses: [],
        lastVal: null,
        checkpoint: existing,
        seconds: 0,
        imagesPerSecond: 0,
        alreadyFinished: true,
      };
    }
  } else if (opts.resume) {
    refuseForeignRestart(opts.outDir, ckptDir, cfg);
  }

  // Data: fitted to the model's input (resized, grey ↔ RGB); a streamed folder is only listed here.
  const mc = cfg.model;
  const fit = { label: cfg.data.label, imageSize: mc.imageSize, channels: mc.channels };
  const trainSplit = cfg.data.valSize > 0 ? 'train' : 'train_full';
  const streamSrc = cfg.data.stream
    ? openStreamingSource(cfg.data.dataset, trainSplit, {
        imageSize: mc.imageSize,
        channels: mc.channels,
        valSize: cfg.data.valSize,
        limit: cfg.data.trainLimit ?? undefined,
      })
    : null;
  const trainDs = streamSrc
    ? null
    : loadDataset(cfg.data.dataset, trainSplit, {
        dataDir: cfg.data.dataDir ?? undefined,
        valSize: cfg.data.valSize,
        limit: cfg.data.trainLimit ?? undefined,
        ...fit,
      });
  const trainInfo = streamSrc ?? trainDs!;
  const valDs =
    cfg.data.valSize > 0
      ? loadDataset(cfg.data.dataset, 'val', {
          dataDir: cfg.data.dataDir ?? undefined,
          valSize: cfg.data.valSize,
          limit: cfg.train.evalLimit ?? undefined,
          ...fit,
          centralCrop: cfg.data.evalCrop,
        })
      : null;
  if (trainInfo.height !== mc.imageSize || trainInfo.channels !== mc.channels || trainInfo.numClasses > mc.numClasses) {
    throw new TrainingError(
      `data set ${trainInfo.name} has ${trainInfo.height}×${trainInfo.width}×${trainInfo.channels} images and ${trainInfo.numClasses} classes, ` +
        `but model.imageSize=${mc.imageSize}, model.channels=${mc.channels}, model.numClasses=${mc.numClasses}`,
    );
  }
  // Augmentation keyed by (seed, step, example) — needed by streaming, inception crop and mixup; the plain
  // crop/flip recipe keeps drawing from augRng so earlier runs resume and reproduce exactly.
  const keyedAug = cfg.data.stream || cfg.data.augment.inceptionCrop || cfg.data.augment.mixup > 0;

  const model = VisionMoE.init(cfg.model, cfg.seed);
  const specs = paramSpecs(cfg.model);
  const opt = makeOptimizer(cfg.optim, (n) => specs.get(n)?.decay ?? false);
  const rng = new Rng(cfg.seed + 1);
  const augRng = new Rng(cfg.seed + 2);
  const sampler = new BatchSampler(trainInfo.n, {
    batchSize: cfg.train.batchSize,
    seed: cfg.seed + 3,
    shuffle: true,
    dropRemainder: true,
  });
  let step = 0;
  // Fine-tuning: where the weights came from, recorded in every checkpoint so a resumed run still knows.
  let initRecord: Record<string, unknown> | null = null;

  if (ck && existing) {
    for (const [name, v] of model.params) {
      const t = ck.tensors[`params/${name}`];
      if (!t || t.shape.join(',') !== v.shape.join(','))
        throw new TrainingError(`checkpoint ${existing} lacks parameter ${name} or has another shape`);
      v.assign(tf.tensor(t.data as Float32Array, t.shape));
      for (const [slot, map] of opt.slots()) {
        const s = ck.tensors[`opt/${slot}/${name}`];
        if (s) map.set(name, tf.variable(tf.tensor(s.data as Float32Array, s.shape), false));
      }
    }
    const st = ck.meta.state as RunState;
    step = st.step;
    rng.setState(st.rng);
    augRng.setState(st.augRng);
    sampler.setState(st.sampler);
    opt.t = st.optT;
    initRecord = (ck.meta.init_from as Record<string, unknown> | undefined) ?? null;
    const cut = truncateLog(metricsPath, step);
    if (cut !== null)
      log(
        `[vmoe] ignored a cut last line of ${metricsPath} (a write interrupted by a crash): ${JSON.stringify(cut.slice(0, 60))}…`,
      );
    log(`[vmoe] resumed ${path.basename(existing)} at step ${step}`);
  } else {
    if (opts.resume) log(`[vmoe] no checkpoint in ${ckptDir} to resume from: starting at step 0`);
    if (opts.initFrom) {
      const r = initFromCheckpoint(model, opts.initFrom, { head: opts.head, dataset: cfg.data.dataset });
      const headFresh = r.fresh.some((n) => n.startsWith(HEAD_PREFIX));
      initRecord = {
        checkpoint: opts.initFrom,
        head: headFresh ? 'reinitialised' : 'copied',
        head_reason:
          headFresh && !r.head.reinit ? 'not in the checkpoint with this shape (class count changed)' : r.head.reason,
      };
      log(
        `[vmoe] initialised from ${opts.initFrom}: ${r.copied.length} copied, ${r.resized.length} resized (${r.resized.join(', ') || '-'}), ${r.fresh.length} new (${r.fresh.join(', ') || '-'}); head ${initRecord.head} (${initRecord.head_reason})`,
      );
    }
    if (fs.existsSync(metricsPath)) fs.rmSync(metricsPath);
  }
  writeFileWhole(path.join(opts.outDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');

  const frozen = (name: string) => cfg.train.freeze.some((p) => name.startsWith(p));
  const trainable = [...model.params.entries()].filter(([n]) => !frozen(n));
  const trainVars = trainable.map(([, v]) => v);
  const nameOf = new Map(trainable.map(([n, v]) => [v.name, n]));

  let lastCkpt = existing ?? '';
  const lastGood = () => {
    if (!lastCkpt) return 'no checkpoint was written before it';
    // Saved right before the failing step: its weights are finite, yet they already give a non-finite loss.
    const tooLate =
      checkpointStepOf(lastCkpt) === step
        ? ' (its weights are finite, but they already give this loss: resuming from it fails the same way)'
        : '';
    return `the last finite checkpoint is ${lastCkpt}${tooLate}`;
  };
  const divergeHint = 'try a lower optim.lr, optim.gradClipNorm, or a longer optim.warmupSteps';
  // A checkpoint is written only when every parameter and optimizer slot is finite.
  const saveState = (): string => {
    const tensors: Record<string, NamedArray> = {};
    for (const [name, v] of model.params)
      tensors[`params/${name}`] = { dtype: 'float32', shape: v.shape.slice(), data: v.dataSync() as Float32Array };
    for (const [slot, map] of opt.slots()) {
      for (const [name, v] of map)
        tensors[`opt/${slot}/${name}`] = {
          dtype: 'float32',
          shape: v.shape.slice(),
          data: v.dataSync() as Float32Array,
        };
    }
    const nf = findNonFinite(tensors);
    if (nf) {
      throw new TrainingError(
        `training diverged at step ${step}: ${describeNonFinite(nf)}; no checkpoint was written for step ${step}, ${lastGood()}`,
        { hint: divergeHint },
      );
    }
    const state: RunState = {
      step,
      rng: rng.getState(),
      augRng: augRng.getState(),
      sampler: sampler.getState(),
      optT: opt.t,
    };
    return saveCheckpoint(
      ckptDir,
      { meta: { ...runRecord(cfg), ...(initRecord ? { init_from: initRecord } : {}), step, state }, tensors },
      { keep: cfg.train.keepCheckpoints },
    );
  };

  const total = cfg.train.steps;
  const stopAt = Math.min(total, opts.stopAtStep ?? total);
  const progress = new Progress(total, { quiet: opts.quiet });
  const losses: number[] = [];
  let lastVal: EvalSummary | null = null;
  const t0 = performance.now();
  let imagesSeen = 0;
  const B = cfg.train.batchSize;
  const metrics = new JsonlAppender(metricsPath);
  const appendLog = (rec: Record<string, unknown>) => metrics.append(rec);
  // Streaming: a look-ahead copy of the sampler feeds the prefetch queue; the trainer's own sampler (the one saved
  // in checkpoints) still says which batch comes next, and the two are checked to agree.
  let stream: StreamingBatches | null = null;
  if (streamSrc) {
    const ahead = new BatchSampler(trainInfo.n, {
      batchSize: B,
      seed: cfg.seed + 3,
      shuffle: true,
      dropRemainder: true,
    });
    ahead.setState(sampler.getState());
    stream = new StreamingBatches(streamSrc, {
      nextIndices: () => ahead.next(),
      firstStep: step,
      prefetch: cfg.data.prefetch,
      scale: cfg.data.scale,
      augment: cfg.data.augment,
      seed: cfg.seed + 2,
    });
  }
  try {
    const startStep = step;
    let lastYield = performance.now();
    while (step < stopAt) {
      if (opts.stop?.signal) {
        const sig = opts.stop.signal;
        const savedAt = checkpointStepOf(lastCkpt);
        if (step > startStep && savedAt !== step) lastCkpt = saveState();
        const what = lastCkpt
          ? `checkpoint ${lastCkpt} holds step ${checkpointStepOf(lastCkpt)}`
          : 'nothing was trained, so nothing was saved';
        throw new TrainingInterrupted(
          sig,
          step,
          lastCkpt || null,
          `interrupted by ${sig} at step ${step} of ${total}; ${what}; ${metricsPath} is complete up to it`,
          {
            hint: lastCkpt
              ? `continue with: ${resumeCommand}`
              : `start it again with: ${resumeCommand} (it restarts at step 0)`,
          },
        );
      }
      const tStep = performance.now();
      const idx = sampler.next();
      let batch: Batch;
      if (stream) {
        const got = await stream.next();
        if (got.step !== step || got.indices.join() !== idx.join()) {
          throw new Error(`streaming pipeline out of step: batch of step ${got.step} at step ${step}`);
        }
        batch = got.batch;
      } else {
        batch = makeBatch(trainDs!, idx, {
          scale: cfg.data.scale,
          augment: cfg.data.augment,
          rng: augRng,
          ...(keyedAug ? { keyed: { seed: cfg.seed + 2, step } } : {}),
        });
      }
      // Mixup: the loss is linear in the targets, so λ·CE(y) + (1−λ)·CE(y rolled by one) is the mixed-target loss.
      const mix =
        cfg.data.augment.mixup > 0
          ? mixupBatch(batch.x, batch.y, mc.numClasses, cfg.data.augment.mixup, keyedRng(cfg.seed + 5, step, 0))
          : null;
      const yRolled = mix
        ? Int32Array.from(batch.y, (_, b) => batch.y[(b + batch.y.length - 1) % batch.y.length]!)
        : null;
      const lr = learningRate(cfg.optim, step + 1, total);
      let taskLoss = NaN,
        auxLoss = NaN,
        gnorm = NaN;
      let moeStats: MoeStepStats[] = [];
      tf.tidy(() => {
        const x = tf.tensor4d(mix ? mix.x : batch.x, batch.shape);
        const y = tf.tensor1d(batch.y, 'int32');
        const y2 = yRolled ? tf.tensor1d(yRolled, 'int32') : null;
        const g = stepGradients(model, trainVars, x, y, {
          numClasses: cfg.model.numClasses,
          labelSmoothing: cfg.train.labelSmoothing,
          accumSteps: cfg.train.accumSteps,
          rng,
          mix: mix && y2 ? { y2, lambda: mix.lambda } : undefined,
        });
        ({ task: taskLoss, aux: auxLoss, moe: moeStats } = g);
        const total = taskLoss + auxLoss;
        if (!Number.isFinite(total)) {
          throw new TrainingError(
            `loss is ${total} at step ${step + 1} (task ${taskLoss}, aux ${auxLoss}); nothing was saved for this step; ${lastGood()}. ` +
              'Try a lower optim.lr, optim.gradClipNorm, or a longer warmup.',
          );
        }
        const byName: Record<string, tf.Tensor> = {};
        for (const [vname, t] of g.grads) byName[nameOf.get(vname)!] = t;
        gnorm = opt.apply(model.params, byName, lr);
      });
      if (!Number.isFinite(gnorm)) {
        throw new TrainingError(
          `gradient norm is ${gnorm} at step ${step + 1}: training diverged; nothing was saved for this step; ${lastGood()}`,
          { hint: divergeHint },
        );
      }
      step += 1;
      imagesSeen += B;
      const loss = taskLoss + auxLoss;
      losses.push(loss);
      const dt = (performance.now() - tStep) / 1000;
      const ips = B / dt;
      appendLog({
        step,
        epoch: sampler.epoch,
        lr,
        loss,
        task_loss: taskLoss,
        aux_loss: auxLoss,
        grad_norm: gnorm,
        images_per_s: ips,
        seconds: (performance.now() - t0) / 1000,
        moe: moeStats,
      });
      progress.update(step, { loss, ips });
      opts.onStep?.(step, total, ips);
      // Hand the event loop a turn about once a second: a long synchronous loop would otherwise starve timers,
      // signal handlers and IPC of the process that hosts the training (a test runner's worker, a parent CLI).
      // With a stop request every step yields, so a signal is seen within one step.
      if (opts.stop || performance.now() - lastYield >= (opts.yieldEveryMs ?? 1000)) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
      if (step % cfg.train.logEvery === 0)
        progress.line(step, `loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} |g| ${gnorm.toFixed(3)}`);

      const atEnd = step === total;
      if (valDs && ((cfg.train.evalEvery > 0 && step % cfg.train.evalEvery === 0) || atEnd)) {
        lastVal = evaluateSplit(model, valDs, cfg, step);
        appendLog({ step, split: 'val', n: lastVal.n, accuracy: lastVal.accuracy, nll: lastVal.nll });
        progress.line(
          step,
          `val accuracy ${lastVal.accuracy.toFixed(4)} nll ${lastVal.nll.toFixed(4)} (n=${lastVal.n})`,
        );
      }
      if ((cfg.train.checkpointEvery > 0 && step % cfg.train.checkpointEvery === 0) || atEnd || step === stopAt) {
        lastCkpt = saveState();
      }
    }
  } finally {
    metrics.close();
    await stream?.close();
  }
  progress.done();
  const seconds = (performance.now() - t0) / 1000;
  const result: TrainResult = {
    step,
    losses,
    lastVal,
    checkpoint: lastCkpt,
    seconds,
    imagesPerSecond: imagesSeen / Math.max(seconds, 1e-9),
  };
  writeFileWhole(
    path.join(opts.outDir, 'train_summary.json'),
    JSON.stringify(
      {
        ...runRecord(cfg),
        ...(initRecord ? { init_from: initRecord } : {}),
        step,
        seconds,
        images_per_s: result.imagesPerSecond,
        final_loss: losses.at(-1) ?? null,
        val: lastVal,
        checkpoint: lastCkpt,
      },
      null,
      2,
    ) + '\n',
  );
  model.dispose();
  opt.dispose();
  return result;
}

/**
 * `--resume` without a checkpoint restarts at step 0, which is only right for the same run killed before
 * its first checkpoint: a folder with a summary or evaluation results, or with another run's config, is
 * refused instead of being silently replaced.
 */
function refuseForeignRestart(dir: string, ckptDir: string, cfg: ExperimentConfig): void {
  const hint = 'pass --overwrite instead of --resume to move it aside and start afresh, or choose another --out';
  const finished = runFilesIn(dir).filter((f) => !['config.json', 'metrics.jsonl', 'checkpoints'].includes(f));
  if (finished.length > 0) {
    throw new TrainingError(
      `nothing to resume in ${dir}: ${ckptDir} holds no checkpoint, and ${finished.join(', ')} belong to a run that cannot be continued`,
      { hint },
    );
  }
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile)) return;
  let saved: Partial<ExperimentConfig> | null = null;
  try {
    saved = withDefaults(JSON.parse(fs.readFileSync(configFile, 'utf8'))) as Partial<ExperimentConfig>;
  } catch {
    // unreadable: treated as another run's
  }
  const differs = (['model', 'data', 'optim', 'seed'] as const).find(
    (k) => saved === null || !sameJson(saved[k], cfg[k]),
  );
  if (differs) {
    throw new TrainingError(
      `nothing to resume in ${dir}: ${ckptDir} holds no checkpoint, and ${configFile} is another run's (its "${differs}" differs from the one given)`,
      { hint },
    );
  }
}

/**
 * Drops log lines written after the checkpoint we resume from, so the log reads as one run; returns a cut
 * last line (a write interrupted by a crash), which is dropped too, or null.
 */
function truncateLog(file: string, step: number): string | null {
  if (!fs.existsSync(file)) return null;
  const { records, cutLastLine } = readJsonl<{ step?: number }>(file);
  const kept = records.filter((r) => typeof r.step === 'number' && r.step <= step);
  writeFileWhole(file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  return cutLastLine;
}

export { engineInfo };
