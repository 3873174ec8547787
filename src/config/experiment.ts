/**
 * Experiment config: model + data + optimisation, validated with full defaults.
 * `--set a.b=value` overrides are parsed as JSON where possible and checked by
 * the same schema, so a typo or a wrong type names the field.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { ModelSchema, checkModelConfig } from '../vmoe/config.js';
import { ConfigError } from '../util/errors.js';
import { jsonErrorOffset } from './json-offset.js';

export const DataSchema = z.strictObject({
  dataset: z.enum(['fashion-mnist', 'mnist']).default('fashion-mnist'),
  dataDir: z.string().nullable().default(null),
  valSize: z.number().int().min(0).default(5000),
  /** Use only the first N training examples (null = all). */
  trainLimit: z.number().int().min(1).nullable().default(null),
  scale: z.enum(['minus1to1', 'zero1']).default('minus1to1'),
  augment: z
    .strictObject({
      randomCrop: z.number().int().min(0).default(0),
      flip: z.boolean().default(false),
    })
    .prefault({}),
});

export const OptimSchema = z.strictObject({
  optimizer: z.enum(['adam', 'adamw']).default('adamw'),
  lr: z.number().positive().default(1e-3),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
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
  if (r.data.model.type !== 'vit' && r.data.train.batchSize % r.data.model.moe.groupImages !== 0) {
    throw new ConfigError([
      `${source}: train.batchSize (${r.data.train.batchSize}) must be a multiple of model.moe.groupImages (${r.data.model.moe.groupImages})`,
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
