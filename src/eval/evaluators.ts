/**
 * Evaluators: small units, chosen by name, that read Outputs (plain arrays: logits (M, N, K), labels,
 * pre-logits, router statistics) and yield named numbers with their conventions — the big_vision
 * evaluator pattern. `evaluate` composes them into one MetricsReport (report.ts); `vmoe eval`,
 * `vmoe metrics`, `vmoe sweep`, `vmoe robustness` and `experiment e3` all go through it, so the same
 * predictions give the same keys and values everywhere.
 *
 * Units: classification (accuracy, NLL, Brier), calibration (ECE and its variants, reliability bins,
 * calibration AUC), selective (AURC, oracle accuracy, accuracy at coverage, coverage at risk),
 * diversity (ensembles), temperature (needs held-out Outputs), ood (needs OOD Outputs), routing
 * (router statistics of MoE layers), conformal (split conformal prediction sets; needs calibration
 * Outputs).
 */
import {
  ACCURACY_CONVENTION,
  BRIER_CONVENTION,
  DIVERSITY_CONVENTION,
  NLL_CONVENTION,
  ORACLE_FRACTIONS,
  accuracy,
  brier,
  calibrationAuc,
  confidenceAndCorrect,
  ensembleDiversity,
  memberNlls,
  nll,
  oracleCollaborativeAccuracy,
  CONFORMAL_METHODS,
  QUANTILE_RULE,
  conformalCurve,
  probsFromLogits,
  type Binning,
  type ConformalMethod,
  type Logits,
  type Probs,
} from '../metrics/index.js';
import type { Outputs } from '../vmoe/outputs.js';
import { DataError, UsageError } from '../util/errors.js';
import { calibrationDetails, percentKey, selectiveDetails } from './classification.js';
import { oodEvaluation, temperatureScaled, type OodSet } from './ood-temperature.js';
import type { ConformalResults, MetricsReport } from './report.js';

/** What evaluators read: the predictions to evaluate and, for some, extra data. */
export interface EvalInputs {
  outputs: Outputs;
  /** Whether `outputs.logits` are logits or log-probabilities (a CSV of p0..p{K-1}); scores that need raw logits are skipped for the latter. */
  scoreKind?: 'logits' | 'log-probs';
  /** Held-out predictions (the val split) for temperature scaling. */
  fit?: Outputs;
  fitSplit?: string;
  /** OOD sets for the ood evaluator. */
  ood?: OodSet[];
  /** Training-split predictions with pre-logits, to fit the Mahalanobis scores (null: skip them). */
  oodTrain?: Outputs | null;
  /** Calibration predictions (e.g. the val split) for the conformal evaluator; exchangeable with `outputs`. */
  calib?: Outputs;
  /** where `calib` came from, for the conventions (e.g. 'mnist/val (n=64)' or a CSV path) */
  calibSource?: string;
}

/** What the conformal evaluator calibrates: methods × levels α, and the options of conformalCurve. */
export interface ConformalEvalOptions {
  /** default lac, aps, raps */
  methods: ConformalMethod[];
  /** miscoverage levels α in (0, 1), default [0.1] */
  alphas: number[];
  /** Mondrian q̂ per class (default false) */
  classConditional?: boolean;
  /** randomised APS / RAPS scores (default false); lac is deterministic either way */
  randomized?: boolean;
  /** seed of the randomisation and of RAPS's tuning split (default 0) */
  seed?: number;
  /** include each test example's set (`prediction_sets`) in the reports (default false) */
  returnSets?: boolean;
}

/** Conformal defaults: every method at α = 0.1. */
export const DEFAULT_CONFORMAL_OPTIONS: ConformalEvalOptions = { methods: [...CONFORMAL_METHODS], alphas: [0.1] };

/** Options every evaluator takes: ECE bins and binning, how temperatures are fitted for ensembles, conformal settings. */
export interface EvaluatorOptions {
  /** ECE bins (default 15) */
  bins: number;
  /** ECE binning (default equal-width) */
  binning: Binning;
  temperatureMode: 'pooled' | 'per-member';
  /** the conformal evaluator's methods, levels and options */
  conformal: ConformalEvalOptions;
}

/** The evaluator options used when none are given: 15 equal-width bins, pooled temperature, conformal defaults. */
export const DEFAULT_EVALUATOR_OPTIONS: EvaluatorOptions = {
  bins: 15,
  binning: 'equal-width',
  temperatureMode: 'pooled',
  conformal: DEFAULT_CONFORMAL_OPTIONS,
};

/** The shared view evaluators compute once per Outputs: logits as a metrics array and p̄ (N, K). */
export interface Prepared {
  inputs: EvalInputs;
  logits: Logits;
  /** mean of the members' probabilities p̄, (N, K) */
  probs: Probs;
  /** max p̄ per example and whether its argmax is the label */
  confidence: Float64Array;
  correct: Uint8Array;
}

/** One evaluator: a name and a function from prepared predictions to part of the report. */
export interface Evaluator {
  readonly name: EvaluatorName;
  /** Whether this evaluator has what it needs (e.g. ensembles for diversity); skipped silently when not. */
  applies(p: Prepared): boolean;
  /** Compute this evaluator's part of the report. */
  run(p: Prepared, opts: EvaluatorOptions): Partial<MetricsReport> & { conventions?: Record<string, unknown> };
}

/** Every evaluator, in report order. */
export const EVALUATOR_NAMES = [
  'classification',
  'calibration',
  'selective',
  'diversity',
  'temperature',
  'ood',
  'routing',
  'conformal',
] as const;
/** The name of an evaluator (a key of `EVALUATORS`). */
export type EvaluatorName = (typeof EVALUATOR_NAMES)[number];

/** AUROC of confidence for right vs wrong predictions; NaN when either class is absent (all right or all wrong). */
function safeCalibrationAuc(confidence: Float64Array, correct: Uint8Array): number {
  let hits = 0;
  for (let i = 0; i < correct.length; i++) hits += correct[i]!;
  return hits === 0 || hits === correct.length ? NaN : calibrationAuc(confidence, correct);
}

function memberSlice(o: Outputs, j: number): Logits {
  const size = o.n * o.numClasses;
  return { data: o.logits.subarray(j * size, (j + 1) * size), n: o.n, k: o.numClasses };
}

const classification: Evaluator = {
  name: 'classification',
  applies: () => true,
  run: (p) => ({
    accuracy: accuracy(p.probs, p.inputs.outputs.labels),
    nll: nll(p.logits, p.inputs.outputs.labels),
    brier: brier(p.probs, p.inputs.outputs.labels),
    conventions: {
      prediction:
        p.inputs.outputs.members > 1 ? "mean of the members' probabilities p̄ = mean_m softmax(z_m)" : 'softmax(logits)',
      accuracy: ACCURACY_CONVENTION,
      nll: NLL_CONVENTION,
      brier: BRIER_CONVENTION,
    },
  }),
};

const calibration: Evaluator = {
  name: 'calibration',
  applies: () => true,
  run: (p, opts) => {
    const c = calibrationDetails(p.probs, p.inputs.outputs.labels, { bins: opts.bins, binning: opts.binning });
    return {
      ece: c.ece.value,
      calibration_auc: safeCalibrationAuc(p.confidence, p.correct),
      calibration: c.details,
      conventions: {
        ece: c.ece.convention,
        calibration: c.conventions,
        calibration_auc:
          'AUROC of confidence max p̄ for correct (positive) vs wrong predictions; NaN (null in JSON) if all right or all wrong',
      },
    };
  },
};

const selective: Evaluator = {
  name: 'selective',
  applies: () => true,
  run: (p) => {
    const s = selectiveDetails(p.confidence, p.correct);
    return {
      aurc: s.aurc,
      oracle_accuracy: Object.fromEntries(
        ORACLE_FRACTIONS.map((f) => [percentKey(f), oracleCollaborativeAccuracy(p.confidence, p.correct, f)]),
      ),
      selective_prediction: s.details,
      conventions: {
        selective: 'confidence = max p̄; AURC = mean risk over coverages i/N',
        oracle_accuracy: 'the round(f·N) least confident examples answered by an always-right oracle; key f in percent',
        selective_prediction: s.conventions,
      },
    };
  },
};

const diversity: Evaluator = {
  name: 'diversity',
  applies: (p) => p.inputs.outputs.members > 1,
  run: (p) => {
    const o = p.inputs.outputs;
    const d = ensembleDiversity(p.logits, o.labels);
    return {
      gibbs_nll: d.gibbsNll,
      member_nlls: memberNlls(p.logits, o.labels),
      member_accuracy: Array.from({ length: o.members }, (_, j) =>
        accuracy(probsFromLogits(memberSlice(o, j)), o.labels),
      ),
      disagreement: d.disagreement,
      normalized_disagreement: d.normalizedDisagreement,
      pairwise_kl: d.pairwiseKl,
      mutual_information: d.mutualInformation,
      ambiguity: d.ambiguity,
      conventions: {
        diversity: {
          gibbs_nll: "mean over members of each member's NLL, nats",
          member_nlls: "each member's own NLL, nats",
          member_accuracy: "each member's own accuracy",
          disagreement: DIVERSITY_CONVENTION.disagreement,
          normalized_disagreement: DIVERSITY_CONVENTION.normalizedDisagreement,
          pairwise_kl: DIVERSITY_CONVENTION.pairwiseKl,
          mutual_information: DIVERSITY_CONVENTION.mutualInformation,
          ambiguity: DIVERSITY_CONVENTION.ambiguity,
        },
      },
    };
  },
};

const temperature: Evaluator = {
  name: 'temperature',
  applies: (p) => p.inputs.fit !== undefined,
  run: (p, opts) => {
    const t = temperatureScaled(p.inputs.fit!, p.inputs.outputs, opts.bins, opts.temperatureMode);
    return {
      temperature_scaled: {
        fit_split: p.inputs.fitSplit ?? `held-out data (n=${p.inputs.fit!.n})`,
        mode: t.fit.mode === 'per-member' ? 'per-member' : 'pooled',
        temperatures: t.fit.temperatures,
        fit_nll_before: t.fit.nllBefore,
        fit_nll_after: t.fit.nllAfter,
        convention: t.fit.convention,
        accuracy: t.metrics.accuracy,
        nll: t.metrics.nll,
        brier: t.metrics.brier,
        ece: t.metrics.ece,
      },
    };
  },
};

const ood: Evaluator = {
  name: 'ood',
  applies: (p) => (p.inputs.ood?.length ?? 0) > 0,
  run: (p) => {
    const r = oodEvaluation(p.inputs.outputs, p.inputs.ood!, {
      train: p.inputs.oodTrain ?? null,
      scoreKind: p.inputs.scoreKind ?? 'logits',
    });
    return { ood: r.entries, conventions: { ood: r.conventions } };
  },
};

const routing: Evaluator = {
  name: 'routing',
  applies: (p) => p.inputs.outputs.router.length > 0,
  run: (p) => ({
    router: p.inputs.outputs.router.map((r) => ({
      block: r.block,
      processed_fraction: r.processedFraction,
      drop_fraction: r.dropFraction,
      expert_load: r.expertLoad,
      capacity: r.capacity,
      group_size: r.groupSize,
    })),
    conventions: {
      router:
        'per MoE layer, averaged over batches weighted by batch size: processed_fraction = processed (token, choice) assignments / all; expert_load = share of processed assignments per expert',
    },
  }),
};

/** The probabilities conformal prediction reads: softmax, or for ensembles the members' softmax (averaged by conformalCurve). */
function probsOf(o: Outputs): Probs {
  return probsFromLogits({ data: o.logits, n: o.n, k: o.numClasses, ...(o.members > 1 ? { m: o.members } : {}) });
}

const conformal: Evaluator = {
  name: 'conformal',
  applies: (p) => p.inputs.calib !== undefined,
  run: (p, opts) => {
    const c = { ...DEFAULT_CONFORMAL_OPTIONS, ...opts.conformal };
    const calib = p.inputs.calib!;
    const o = p.inputs.outputs;
    const calibProbs = { probs: probsOf(calib), labels: calib.labels };
    const results: ConformalResults = {};
    for (const method of c.methods) {
      results[method] = conformalCurve(
        calibProbs,
        { probs: p.probs, labels: o.labels },
        {
          method,
          alphas: c.alphas,
          classConditional: c.classConditional,
          seed: c.seed,
          returnSets: c.returnSets,
          // randomisation applies to the APS / RAPS scores; LAC has no ties to break
          randomized: method === 'lac' ? false : c.randomized,
        },
      );
    }
    return {
      conformal: results,
      conventions: {
        conformal: {
          calibration: p.inputs.calibSource ?? `held-out data (n=${calib.n})`,
          probabilities:
            o.members > 1
              ? "mean of the members' probabilities p̄ = mean_m softmax(z_m), calibration and test alike"
              : 'softmax(logits), calibration and test alike',
          scores: {
            lac: 's(x, y) = 1 − p_y',
            aps: 's(x, y) = sum of the probabilities ranked above y, plus p_y (randomised: plus u·p_y instead, u ~ U(0, 1) per example)',
            raps: 'APS score + λ·max(0, rank(y) − k_reg); λ and k_reg tuned on a seeded 30% of the calibration rows, which then do not enter q̂',
          },
          quantile_rule: QUANTILE_RULE,
          prediction_set:
            'C(x) = {y : s(x, y) ≤ qhat}; guarantee P(y ∈ C(x)) ≥ 1 − alpha for exchangeable calibration and test data',
          coverage: 'fraction of test examples whose label is in their prediction set',
          mean_set_size: 'mean number of classes per prediction set',
          layout: 'conformal.<method> lists one report per alpha, in the order given',
          class_conditional: c.classConditional ?? false,
          randomized: (c.randomized ?? false) ? 'aps and raps (lac is never randomised)' : false,
        },
      },
    };
  },
};

/** Every evaluator, by name. */
export const EVALUATORS: Record<EvaluatorName, Evaluator> = {
  classification,
  calibration,
  selective,
  diversity,
  temperature,
  ood,
  routing,
  conformal,
};

/** The evaluators that describe predictions alone: what `vmoe metrics` and the sweep / robustness rows run. */
export const PREDICTION_EVALUATORS: EvaluatorName[] = ['classification', 'calibration', 'selective', 'diversity'];

/** Checks a comma-separated or listed choice of evaluator names. */
export function evaluatorNames(names: string | readonly string[]): EvaluatorName[] {
  const list =
    typeof names === 'string'
      ? names
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [...names];
  for (const n of list) {
    if (!(EVALUATOR_NAMES as readonly string[]).includes(n))
      throw new UsageError(`unknown evaluator "${n}"; choose from ${EVALUATOR_NAMES.join(', ')}`);
  }
  return list as EvaluatorName[];
}

export function prepare(inputs: EvalInputs): Prepared {
  const o = inputs.outputs;
  const logits: Logits = { data: o.logits, n: o.n, k: o.numClasses, ...(o.members > 1 ? { m: o.members } : {}) };
  const probs = probsFromLogits(logits);
  const { confidence, correct } = confidenceAndCorrect(probs, o.labels);
  return { inputs, logits, probs, confidence, correct };
}

/**
 * Runs the named evaluators (those that apply) over one set of predictions and merges their parts,
 * in a fixed key order, into one report. `temperature_scaled` and `ood` are null when not computed.
 */
export function evaluate(
  inputs: EvalInputs,
  names: readonly EvaluatorName[] = PREDICTION_EVALUATORS,
  options: Partial<EvaluatorOptions> = {},
): MetricsReport {
  const opts = { ...DEFAULT_EVALUATOR_OPTIONS, ...options };
  if (names.includes('conformal') && inputs.calib && inputs.calib.numClasses !== inputs.outputs.numClasses) {
    throw new DataError(
      `the calibration predictions have ${inputs.calib.numClasses} classes but the test predictions have ${inputs.outputs.numClasses}`,
    );
  }
  const p = prepare(inputs);
  const o = inputs.outputs;
  const report: Record<string, unknown> = { n: o.n, k: o.numClasses, members: o.members };
  const conventions: Record<string, unknown> = {};
  for (const name of EVALUATOR_NAMES) {
    if (!names.includes(name)) continue;
    const e = EVALUATORS[name];
    if (!e.applies(p)) continue;
    const { conventions: c, ...values } = e.run(p, opts);
    Object.assign(report, values);
    Object.assign(conventions, c);
  }
  if (names.includes('temperature')) report.temperature_scaled ??= null;
  if (names.includes('ood')) report.ood ??= null;
  if (names.includes('conformal')) report.conformal ??= null;
  conventions.temperature_scaled = false; // the headline numbers are raw; scaled ones live under temperature_scaled
  report.conventions = conventions;
  return report as unknown as MetricsReport;
}
