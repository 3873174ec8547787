/**
 * Experiment config: model + data + optimisation, validated with full defaults.
 * `--set a.b=value` overrides are parsed as JSON where possible and checked by
 * the same schema, so a typo or a wrong type names the field.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { ModelSchema, checkModelConfig } from '../vmoe/config.js';
import { ConfigError } from '../util/errors.js';
import { datasetNames, IDX_FOLDER_PREFIX, SOURCE_PREFIXES } from '../data/index.js';

/** A registered data set name, or a prefixed source (`idx:`, `cifar10:`, `cifar100:`, `folder:`, `npz:`) with a path. */
function isDatasetName(name: string): boolean {
  if (datasetNames().includes(name)) return true;
  return [IDX_FOLDER_PREFIX, ...SOURCE_PREFIXES].some((p) => name.startsWith(p) && name.length > p.length);
}
import { jsonErrorOffset } from './json-offset.js';

export const DataSchema = z.strictObject({
  dataset: z
    .string()
    .refine(isDatasetName, {
      message: `unknown data set: use ${['fashion-mnist', 'mnist'].join(', ')}, or idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR, npz:FILE`,
    })
    .default('fashion-mnist'),
  /** Evaluation (val, test, eval commands): keep this central fraction of each image and resize it back; 1 = off. */
  evalCrop: z.number().gt(0).max(1).default(1),
  /** CIFAR-100 only: train on the 100 fine classes or the 20 coarse superclasses. */
  label: z.enum(['fine', 'coarse']).default('fine'),
  /** Decode the training split batch by batch from disk (folder: data sets) instead of holding it in memory. */
  stream: z.boolean().default(false),
  /** Streaming: batches decoded ahead of the trainer (the bound on decoded-but-unused batches). */
  prefetch: z.number().int().min(1).default(4),
  dataDir: z.string().nullable().default(null),
  valSize: z.number().int().min(0).default(5000),
  /** Use only the first N training examples (null = all). */
  trainLimit: z.number().int().min(1).nullable().default(null),
  scale: z.enum(['minus1to1', 'zero1']).default('minus1to1'),
  augment: z
    .strictObject({
      randomCrop: z.number().int().min(0).default(0),
      flip: z.boolean().default(false),
      /** Inception crop (random area 5–100 %, aspect 3/4–4/3, resized back) instead of randomCrop. */
      inceptionCrop: z.boolean().default(false),
      /** Mixup Beta(α, α) parameter; 0 = off. */
      mixup: z.number().min(0).default(0),
    })
    .prefault({}),
});

export const OptimSchema = z.strictObject({
  /** sgd: SGD with (heavy-ball) momentum, the reference fine-tuning recipe (docs/finetuning.md). */
  optimizer: z.enum(['adam', 'adamw', 'sgd']).default('adamw'),
  lr: z.number().positive().default(1e-3),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  /** Momentum of sgd (0 = plain SGD). */
  momentum: z.number().min(0).max(1).default(0.9),
  /** Decoupled weight decay on kernels (adamw only). */
  weightDecay: z.number().min(0).default(1e-4),
  schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
  warmupSteps: z.number().int().min(0).default(100),
  /** Final learning rate as a fraction of lr (cosine and linear). */
  minLrRatio: z.number().min(0).max(1).default(0),
  gradClipNorm: z.number().positive().nullable().default(1.0),
});

export const TrainSchema = z.strictObject({
  batchSize: z.number().int().min(1).default(64),
  steps: z.number().int().min(1).default(1000),
  labelSmoothing: z.number().min(0).max(1).default(0),
  logEvery: z.number().int().min(1).default(10),
  evalEvery: z.number().int().min(0).default(500),
  /** Validation examples used at each periodic evaluation (null = whole val split). */
  evalLimit: z.number().int().min(1).nullable().default(2000),
  checkpointEvery: z.number().int().min(0).default(500),
  keepCheckpoints: z.number().int().min(1).default(2),
  /** Parameter-name prefixes excluded from training (fine-tuning), e.g. ["embed/", "block0/"]. */
  freeze: z.array(z.string()).default([]),
  /**
   * Gradient accumulation: each step's batch of batchSize images is run as accumSteps micro-batches of
   * batchSize/accumSteps whose gradients are summed before one optimizer step (same update, less memory).
   */
  accumSteps: z.number().int().min(1).default(1),
});

export const EvalSchema = z.strictObject({
  batchSize: z.number().int().min(1).default(256),
});

/**
 * Zod schema of an experiment config (`name`, `seed`, and the `model`, `data`, `optim`, `train`, `eval` sections),
 * with every default filled in.
 */
export const ExperimentSchema = z.strictObject({
  name: z.string().default('experiment'),
  description: z.string().default(''),
  seed: z.number().int().min(0).default(0),
  model: ModelSchema.prefault({}),
  data: DataSchema.prefault({}),
  optim: OptimSchema.prefault({}),
  train: TrainSchema.prefault({}),
  eval: EvalSchema.prefault({}),
  /** What this config reached when it was last run, and how long it took (documentation, not checked). */
  expected: z.record(z.string(), z.unknown()).default({}),
});

/** A parsed, validated experiment config. */
export type ExperimentConfig = z.infer<typeof ExperimentSchema>;

function describeIssues(err: z.ZodError, source: string): string[] {
  return err.issues.map((i) => {
    const where = i.path.length ? i.path.join('.') : '(top level)';
    let msg = i.message;
    if (i.code === 'unrecognized_keys') msg = `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${source}: ${where}: ${msg}`;
  });
}

/** Validates a raw object; cross-field checks included. */
export function parseExperiment(raw: unknown, source = 'config'): ExperimentConfig {
  const r = ExperimentSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(describeIssues(r.error, source));
  checkModelConfig(r.data.model);
  const { batchSize, accumSteps } = r.data.train;
  if (batchSize % accumSteps !== 0) {
    throw new ConfigError([
      `${source}: train.batchSize (${batchSize}) must be a multiple of train.accumSteps (${accumSteps})`,
    ]);
  }
  // Routing groups must lie inside one micro-batch, or accumulation would route differently from the full batch.
  const micro = batchSize / accumSteps;
  if (r.data.model.type !== 'vit' && micro % r.data.model.moe.groupImages !== 0) {
    throw new ConfigError([
      accumSteps === 1
        ? `${source}: train.batchSize (${batchSize}) must be a multiple of model.moe.groupImages (${r.data.model.moe.groupImages})`
        : `${source}: the micro-batch train.batchSize/train.accumSteps (${micro}) must be a multiple of model.moe.groupImages (${r.data.model.moe.groupImages})`,
    ]);
  }
  return r.data;
}

/** Parses "a.b.c=value": value as JSON if it parses, else as a string. */
export function applyOverride(raw: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError([`--set ${assignment}: expected key=value, e.g. --set train.steps=200`]);
  const key = assignment.slice(0, eq).trim();
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  const parts = key.split('.');
  let node: Record<string, unknown> = raw;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (next === undefined) node[p] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new ConfigError([`--set ${key}: "${p}" is not an object`]);
    }
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

/**
 * Where JSON.parse failed, as ` at line L, column C: <reason>` on one line: V8 gives a position for most errors and
 * quotes the text (line breaks included) for an unexpected token, which is cut to its first line here; where it
 * gives none, `jsonErrorOffset` (json-offset.ts) finds it.
 */
function jsonErrorWhere(text: string, message: string): string {
  const reason = message.split('\n')[0]!.replace(/, (?:\.\.\.)?".*$/, ''); // V8 quotes (part of) the text after it
  // where V8 names no position (an unexpected token, a text that ends too early), the scanner finds it
  const offset = /at position (\d+)/.exec(message)?.[1] ?? jsonErrorOffset(text);
  if (offset === null) return `: ${reason}`;
  const before = text.slice(0, Number(offset));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return ` at line ${line}, column ${column}: ${reason.replace(/ in JSON at position \d+.*$/, '')}`;
}

/**
 * Read an experiment config from a JSON file (or the defaults when `file` is null), apply `--set`-style
 * `overrides` (`path.to.field=JSON`) and validate it.
 */
export function loadExperiment(file: string | null, overrides: string[] = []): ExperimentConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([`cannot read config file ${file}: ${(e as Error).message}`]);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError([`${file}: not valid JSON${jsonErrorWhere(text, (e as Error).message)}`]);
    }
  }
  for (const o of overrides) applyOverride(raw, o);
  return parseExperiment(raw, file ?? 'config');
}
