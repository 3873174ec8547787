/** Loading a trained model: a checkpoint file, a checkpoints/ folder, or a run folder. */
import fs from 'node:fs';
import path from 'node:path';
import { assertFiniteCheckpoint, latestCheckpoint, loadCheckpoint } from './format.js';
import { CheckpointError } from '../util/errors.js';
import { parseExperiment, type ExperimentConfig } from '../config/experiment.js';
import { VisionMoE } from '../vmoe/model.js';
import { paramSpecs } from '../vmoe/params.js';

/**
 * A model restored from a checkpoint, with the experiment config it was trained under, its metadata, file, SHA-256
 * and step.
 */
export interface LoadedModel {
  model: VisionMoE;
  config: ExperimentConfig;
  meta: Record<string, unknown>;
  path: string;
  sha256: string;
  step: number;
}

/**
 * The checkpoint file `p` names: the file itself, or the latest checkpoint in a run folder (`<p>/checkpoints/`) or
 * a checkpoint folder.
 */
export function resolveCheckpoint(p: string): string {
  if (!fs.existsSync(p)) throw new CheckpointError(`checkpoint ${p} does not exist`);
  if (fs.statSync(p).isFile()) return p;
  for (const dir of [path.join(p, 'checkpoints'), p]) {
    const f = fs.existsSync(dir) ? latestCheckpoint(dir) : null;
    if (f) return f;
  }
  throw new CheckpointError(`no checkpoint (*.vmoe) found in ${p} or ${path.join(p, 'checkpoints')}`);
}

/**
 * Load a model from a checkpoint file or run folder (see `resolveCheckpoint`), rebuilding it from the config saved
 * in the checkpoint.
 */
export function loadModel(p: string): LoadedModel {
  const file = resolveCheckpoint(p);
  const ck = loadCheckpoint(file);
  let config: ExperimentConfig;
  try {
    config = parseExperiment(ck.meta.config, `${file} (saved config)`);
  } catch (e) {
    throw new CheckpointError(
      `${file}: its saved config is not valid for this version of vmoe-ts: ${(e as Error).message}`,
    );
  }
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  const problems: string[] = [];
  for (const [name, spec] of paramSpecs(config.model)) {
    const t = ck.tensors[`params/${name}`];
    if (!t) problems.push(`missing ${name}`);
    else if (t.shape.join(',') !== spec.shape.join(','))
      problems.push(`${name} has shape [${t.shape}], config expects [${spec.shape}]`);
    else values.set(name, { shape: t.shape, data: t.data as Float32Array });
  }
  if (problems.length)
    throw new CheckpointError(`${file} does not match its own config: ${problems.slice(0, 10).join('; ')}`);
  assertFiniteCheckpoint(ck);
  return {
    model: VisionMoE.fromValues(config.model, values),
    config,
    meta: ck.meta,
    path: file,
    sha256: ck.sha256,
    step: typeof ck.meta.step === 'number' ? ck.meta.step : 0,
  };
}
