/**
 * The evaluation harness: run the model(s) once over every data set (ensembles/baselines
 * ensembleOutputs), then hand the Outputs to the evaluators (evaluators.ts), which yield one typed
 * report (report.ts). Two entry points share everything after the Outputs:
 *
 * - `evaluateCheckpoints`: checkpoints → test, val (temperature scaling and conformal calibration share
 *   one val Outputs), OOD and train (Mahalanobis) Outputs → EvalReport (`vmoe eval`);
 * - `evaluatePredictions`: a predictions CSV (any framework), and optionally a calibration CSV for
 *   conformal prediction → Outputs → PredictionsReport (`vmoe metrics`).
 *
 * Files and stdout formats are export's job (export/eval-files.ts); this module writes nothing.
 */
import { isSyntheticOod, loadDataset, syntheticOodDataset, type ImageDataset, type Split } from '../data/index.js';
import { ensembleFlops, ensembleOutputs, type EnsembleRunOptions } from '../ensembles/baselines.js';
import { loadModel, type LoadedModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { logitsFromProbs, type PredictionsTable } from '../metrics/index.js';
import { DataError, UsageError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import type { Outputs } from '../vmoe/outputs.js';
import {
  DEFAULT_CONFORMAL_OPTIONS,
  PREDICTION_EVALUATORS,
  evaluate,
  type ConformalEvalOptions,
  type EvalInputs,
  type EvaluatorName,
} from './evaluators.js';
import type { OodSet } from './ood-temperature.js';
import { fitFor } from './checkpoint-data.js';
import type { CheckpointRecord, EvalReport, MetricsReport, PredictionsReport } from './report.js';

/** Accuracy, NLL, Brier, calibration, selective prediction and (ensembles) diversity of one set of predictions. */
export type ClassificationMetrics = MetricsReport;

/** The prediction-only evaluators over one Outputs (the rows of sweeps and robustness tables). */
export function classificationMetrics(out: Outputs, bins = 15): ClassificationMetrics {
  return evaluate({ outputs: out }, PREDICTION_EVALUATORS, { bins });
}

/** Loads an OOD set by name: a registered data set's test split, or a synthetic noise set shaped like `like`. */
export function loadOodDataset(
  name: string,
  like: ImageDataset,
  opts: { dataDir?: string; limit?: number; seed?: number; centralCrop?: number },
): ImageDataset {
  const n = opts.limit ?? like.n;
  if (isSyntheticOod(name)) return syntheticOodDataset(name, like, n, opts.seed ?? 0);
  const fit = like.height === like.width ? { imageSize: like.height, channels: like.channels } : {};
  const ds = loadDataset(name, 'test' as Split, {
    dataDir: opts.dataDir,
    limit: n,
    ...fit,
    centralCrop: opts.centralCrop,
  });
  if (ds.height !== like.height || ds.width !== like.width || ds.channels !== like.channels) {
    throw new DataError(
      `OOD set ${name} (--ood) in ${ds.source} has ${ds.height}×${ds.width}×${ds.channels} images; the model takes ${like.height}×${like.width}×${like.channels}`,
      { hint: "give --ood a data set of the model's image size, or a synthetic set (uniform-noise, gaussian-noise)" },
    );
  }
  return ds;
}

/** What `vmoe eval` evaluates, typed (the CLI parses flags into this). */
export interface EvalOptions {
  /** checkpoint files, checkpoints/ folders or run folders; several = a deep ensemble */
  checkpoints: string[];
  /** data set name (default: the one the first checkpoint was trained on) */
  dataset?: string;
  split: Split;
  dataDir?: string;
  limit?: number;
  batchSize: number;
  routing: RoutingOverrides;
  /** MC-dropout passes per model (0 = dropout off) */
  mcSamples: number;
  /** seeds the MC-dropout masks */
  seed: number;
  bins: number;
  /** OOD sets: data-set names (test split) or synthetic noise names */
  ood: string[];
  oodDataDir?: string;
  /** training examples whose pre-logits fit the Mahalanobis scores (0 = skip) */
  mahalanobisFit: number;
  /** also report metrics after temperature scaling fitted on the val split */
  temperatureScale: 'pooled' | 'per-member' | null;
  /** also calibrate split conformal prediction sets on the val split and report them on `split` (null: no) */
  conformal: ConformalEvalOptions | null;
  /** Called after each batch with what is running, the examples done and the total. */
  onProgress?: (label: string, done: number, total: number) => void;
  /** what to call this model in reports (`model_label`; `vmoe report` groups by it); default: the config's name */
  label?: string;
}

/** Defaults of `evaluateCheckpoints`: test split, batch 256, no OOD sets, 15 ECE bins, no MC dropout. */
export const DEFAULT_EVAL_OPTIONS: Omit<EvalOptions, 'checkpoints'> = {
  split: 'test',
  batchSize: 256,
  routing: {},
  mcSamples: 0,
  seed: 0,
  bins: 15,
  ood: [],
  mahalanobisFit: 5000,
  temperatureScale: null,
  conformal: null,
};

/** A finished evaluation: the report and the arrays its figures and predictions file are drawn from. */
export interface EvalRun {
  report: EvalReport;
  outputs: Outputs;
  oodSets: OodSet[];
  /** e.g. "fmnist-vmoe-tiny (vmoe)" or "deep ensemble of 2" */
  label: string;
  dataset: ImageDataset;
  /** sha256 of each checkpoint */
  checkpoints: string[];
  /** conformal prediction sets per test example, one column per method and α (empty without --conformal) */
  predictionSets: PredictionSetColumn[];
}

/** The prediction sets of one method at one α: `set_<method>_<alpha>`, and per example its classes ascending. */
export interface PredictionSetColumn {
  column: string;
  sets: number[][];
}

/** The column name of a method's sets at α, e.g. set_lac_0.1. */
export const predictionSetColumn = (method: string, alpha: number): string => `set_${method}_${alpha}`;

/** Moves `prediction_sets` out of the conformal reports (they stay out of results.json) into columns. */
function takePredictionSets(report: { conformal?: EvalReport['conformal'] }): PredictionSetColumn[] {
  const columns: PredictionSetColumn[] = [];
  for (const [method, reports] of Object.entries(report.conformal ?? {})) {
    for (const r of reports ?? []) {
      if (r.prediction_sets) columns.push({ column: predictionSetColumn(method, r.alpha), sets: r.prediction_sets });
      delete r.prediction_sets;
    }
  }
  return columns;
}

function checkpointRecord(l: LoadedModel): CheckpointRecord {
  return { path: l.path, sha256: l.sha256, step: l.step, seed: l.config.seed };
}

/** Checks that the loaded models can run together with these options; throws UsageError naming the checkpoint. */
function checkModels(loaded: LoadedModel[], opts: EvalOptions): void {
  const first = loaded[0]!;
  for (const l of loaded) {
    if (
      l.config.model.numClasses !== first.config.model.numClasses ||
      l.config.model.imageSize !== first.config.model.imageSize
    ) {
      throw new UsageError(
        `${l.path}: ${l.config.model.numClasses} classes at ${l.config.model.imageSize}px cannot be ensembled with ${first.path} (${first.config.model.numClasses} classes at ${first.config.model.imageSize}px)`,
      );
    }
    const maxK = l.config.model.moe.numExperts / (l.config.model.type === 'e3' ? l.config.model.ensemble.members : 1);
    if (opts.routing.k !== undefined && l.config.model.type !== 'vit' && opts.routing.k > maxK) {
      throw new UsageError(`--k ${opts.routing.k} exceeds the ${maxK} experts each token can reach in ${l.path}`);
    }
  }
  if (opts.mcSamples > 0) {
    const noDropout = loaded.filter((l) => !(l.config.model.dropout > 0)).map((l) => l.path);
    if (noDropout.length)
      throw new UsageError(
        `--mc-samples needs dropout, but ${noDropout.join(', ')} ha${noDropout.length > 1 ? 've' : 's'} model.dropout = 0`,
      );
  }
}

/** Evaluates one checkpoint or an ensemble of them on a data set (and OOD sets, val split for temperature scaling). */
export function evaluateCheckpoints(options: Partial<EvalOptions> & { checkpoints: string[] }): EvalRun {
  const opts: EvalOptions = { ...DEFAULT_EVAL_OPTIONS, ...options };
  if (!opts.checkpoints.length) throw new UsageError('give at least one checkpoint');
  const loaded = opts.checkpoints.map((c) => loadModel(c));
  try {
    return evaluateLoaded(loaded, opts);
  } finally {
    for (const l of loaded) l.model.dispose();
  }
}

function evaluateLoaded(loaded: LoadedModel[], opts: EvalOptions): EvalRun {
  checkModels(loaded, opts);
  const first = loaded[0]!;
  const config = first.config;
  const dataset = opts.dataset ?? config.data.dataset;
  const dataDir = opts.dataDir ?? config.data.dataDir ?? undefined;
  const fit = fitFor(config);
  const ds = loadDataset(dataset, opts.split, { dataDir, valSize: config.data.valSize, limit: opts.limit, ...fit });
  if (ds.numClasses > config.model.numClasses) {
    throw new DataError(
      `${ds.labelsFile ?? `${dataset}/${opts.split}`}: the ${opts.split} split has ${ds.numClasses} classes (labels up to ${ds.labels.reduce((a, y) => Math.max(a, y), -1)}) but ${first.path} predicts ${config.model.numClasses}`,
      {
        hint: `evaluate on a data set with at most ${config.model.numClasses} classes (--dataset), or fine-tune the model with --set model.numClasses=${ds.numClasses}`,
      },
    );
  }
  const run: EnsembleRunOptions = {
    batchSize: opts.batchSize,
    routing: opts.routing,
    mcSamples: opts.mcSamples,
    rng: new Rng(opts.seed),
    onProgress: opts.onProgress,
  };
  const wantMaha = opts.ood.length > 0 && opts.mahalanobisFit > 0;
  const outputs = ensembleOutputs(loaded, ds, { ...run, keepPreLogits: wantMaha });
  const inputs: EvalInputs = { outputs };
  const names: EvaluatorName[] = [...PREDICTION_EVALUATORS, 'temperature', 'ood', 'routing'];
  if (opts.temperatureScale || opts.conformal) {
    // one val Outputs serves both temperature scaling and conformal calibration
    const val = loadDataset(dataset, 'val', {
      ...fit,
      dataDir,
      valSize: config.data.valSize,
      limit: config.train.evalLimit ?? undefined,
    });
    const valOutputs = ensembleOutputs(loaded, val, run);
    const valName = `${dataset}/val (n=${val.n})`;
    if (opts.temperatureScale) {
      inputs.fit = valOutputs;
      inputs.fitSplit = valName;
    }
    if (opts.conformal) {
      inputs.calib = valOutputs;
      inputs.calibSource = valName;
      names.push('conformal');
    }
  }
  const oodSets: OodSet[] = opts.ood.map((name) => ({
    name,
    outputs: ensembleOutputs(
      loaded,
      loadOodDataset(name, ds, { dataDir: opts.oodDataDir, limit: ds.n, centralCrop: fit.centralCrop }),
      {
        ...run,
        keepPreLogits: wantMaha,
      },
    ),
  }));
  if (oodSets.length) {
    inputs.ood = oodSets;
    inputs.oodTrain = wantMaha
      ? ensembleOutputs(
          loaded,
          loadDataset(dataset, 'train', { ...fit, dataDir, valSize: config.data.valSize, limit: opts.mahalanobisFit }),
          { ...run, keepPreLogits: true },
        )
      : null;
  }
  const metrics = evaluate(inputs, names, {
    bins: opts.bins,
    temperatureMode: opts.temperatureScale ?? 'pooled',
    conformal: { ...DEFAULT_CONFORMAL_OPTIONS, ...opts.conformal, returnSets: true },
  });
  const predictionSets = takePredictionSets(metrics);
  const settings = first.model.routingFor(opts.routing);
  const flops = flopsPerImage(config.model, opts.routing);
  const { n, k, members, conventions, ...values } = metrics;
  const report: EvalReport = {
    dataset: ds.name,
    split: ds.split,
    n,
    k,
    members,
    ...values,
    flops_per_image: ensembleFlops(loaded, opts.routing, opts.mcSamples),
    images_per_s: outputs.n / outputs.seconds,
    seconds: outputs.seconds,
    decode_wait_seconds: outputs.inputWaitSeconds ?? 0,
    ensemble:
      loaded.length > 1 || opts.mcSamples > 0
        ? {
            kind: opts.mcSamples > 0 ? 'mc-dropout' : 'deep-ensemble',
            checkpoints: loaded.length,
            mc_samples: opts.mcSamples || null,
            combination: 'mean of member probabilities',
          }
        : config.model.type === 'e3'
          ? { kind: 'e3', members: config.model.ensemble.members, combination: 'mean of member probabilities' }
          : null,
    routing:
      config.model.type !== 'vit'
        ? {
            router: settings.router,
            k: settings.k,
            capacity_factor: settings.capacity === null ? settings.capacityFactor : null,
            capacity: flops.moe[0]?.capacity ?? null,
            batch_priority: settings.batchPriority,
            group_size: settings.groupSize,
          }
        : null,
    checkpoint: loaded.length === 1 ? checkpointRecord(first) : loaded.map(checkpointRecord),
    // seeds the MC-dropout masks; the training seed of each model is under checkpoint (and config)
    ...(opts.label ? { model_label: opts.label } : {}),
    eval_seed: opts.seed,
    batch_size: opts.batchSize,
    conventions: { ...conventions, flops: flops.convention },
    ...runRecord(config),
  };
  const label =
    loaded.length > 1
      ? `deep ensemble of ${loaded.length}`
      : `${config.name} (${config.model.type}${opts.mcSamples > 0 ? `, MC dropout ×${opts.mcSamples}` : ''})`;
  return { report, outputs, oodSets, label, dataset: ds, checkpoints: loaded.map((l) => l.sha256), predictionSets };
}

/**
 * A predictions table as Outputs: logits as given, or log p for probabilities (softmax(log p) = p). Logits held in a
 * Float64Array are shared with the table, not copied (nothing downstream writes to them).
 */
export function outputsFromPredictions(t: PredictionsTable): Outputs {
  const scores = t.kind === 'logits' ? t.scores : logitsFromProbs(t.scores);
  return {
    n: scores.n,
    numClasses: scores.k,
    members: scores.m ?? 1,
    // the table's own array when it already is one (no second n × k copy: a 1 GB CSV holds ~0.4 GB of scores)
    logits: scores.data instanceof Float64Array ? scores.data : Float64Array.from(scores.data as ArrayLike<number>),
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: t.labels,
    router: [],
    seconds: 0,
  };
}

/** Checks that an OOD predictions table can be compared with the in-distribution one. */
function checkOodCompatible(input: PredictionsTable, ood: PredictionsTable): void {
  if (ood.scores.k !== input.scores.k)
    throw new DataError(`${ood.source} has ${ood.scores.k} classes but ${input.source} has ${input.scores.k}`);
  if (ood.kind !== input.kind)
    throw new DataError(`${ood.source} gives ${ood.kind} but ${input.source} gives ${input.kind}; use the same kind`);
  if ((ood.scores.m ?? 1) !== (input.scores.m ?? 1)) {
    throw new DataError(
      `${ood.source} has ${ood.scores.m ?? 1} members but ${input.source} has ${input.scores.m ?? 1}`,
    );
  }
}

/** Options of `evaluatePredictions`. */
export interface PredictionsEvalOptions {
  bins?: number;
  binning?: 'equal-width' | 'equal-mass';
  /** calibration predictions (same classes) for conformal prediction sets */
  calib?: PredictionsTable;
  /** conformal methods and levels (default lac, aps, raps at α = 0.1); used when `calib` is given */
  conformal?: Partial<ConformalEvalOptions>;
}

/**
 * `vmoe metrics`: every prediction evaluator (and OOD, when an OOD table is given; conformal, when a
 * calibration table is given) over a predictions table.
 */
export function evaluatePredictions(
  input: PredictionsTable,
  ood?: PredictionsTable,
  opts: PredictionsEvalOptions = {},
): PredictionsReport {
  const inputs: EvalInputs = {
    outputs: outputsFromPredictions(input),
    scoreKind: input.kind === 'logits' ? 'logits' : 'log-probs',
  };
  const names: EvaluatorName[] = [...PREDICTION_EVALUATORS];
  if (ood) {
    checkOodCompatible(input, ood);
    inputs.ood = [{ name: ood.source, outputs: outputsFromPredictions(ood) }];
    names.push('ood');
  }
  if (opts.calib) {
    if (opts.calib.scores.k !== input.scores.k) {
      throw new DataError(
        `calibration file ${opts.calib.source} has ${opts.calib.scores.k} classes but ${input.source} has ${input.scores.k}; conformal prediction needs the same classes`,
      );
    }
    inputs.calib = outputsFromPredictions(opts.calib);
    inputs.calibSource = `${opts.calib.source} (n=${opts.calib.scores.n})`;
    names.push('conformal');
  }
  const m = evaluate(inputs, names, {
    ...(opts.bins !== undefined ? { bins: opts.bins } : {}),
    ...(opts.binning !== undefined ? { binning: opts.binning } : {}),
    conformal: { ...DEFAULT_CONFORMAL_OPTIONS, ...opts.conformal },
  });
  return { source: input.source, input: input.kind, ...m };
}
