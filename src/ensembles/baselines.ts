/**
 * Ensemble baselines whose members are separate forward passes: deep ensembles
 * (several checkpoints) and MC dropout (several passes with dropout on). Their
 * Outputs are stacked member after member, in the layout E³ Outputs already have.
 */
import type { ImageDataset } from '../data/index.js';
import { computeOutputs, type Outputs } from '../vmoe/outputs.js';
import { flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides, VisionMoE } from '../vmoe/model.js';
import type { ModelConfig } from '../vmoe/config.js';
import type { PixelScale } from '../data/index.js';
import type { Rng } from '../util/rng.js';
import { DataError } from '../util/errors.js';

/** Stacks the members of several Outputs on the same data (deep ensembles, MC-dropout samples). */
export function stackOutputs(parts: Outputs[]): Outputs {
  if (!parts.length) throw new DataError('stackOutputs: no outputs');
  const first = parts[0]!;
  for (const p of parts) {
    if (p.n !== first.n || p.numClasses !== first.numClasses) {
      throw new DataError(
        `cannot ensemble outputs over different data: ${p.n}×${p.numClasses} vs ${first.n}×${first.numClasses}`,
      );
    }
    for (let i = 0; i < p.n; i++)
      if (p.labels[i] !== first.labels[i])
        throw new DataError(`cannot ensemble outputs whose labels differ (example ${i})`);
  }
  const members = parts.reduce((a, p) => a + p.members, 0);
  const logits = new Float32Array(members * first.n * first.numClasses);
  let off = 0;
  for (const p of parts) {
    logits.set(p.logits, off);
    off += p.logits.length;
  }
  const D = first.preLogitsDim;
  const sameD = parts.every((p) => p.preLogitsDim === D);
  let preLogits = new Float32Array(0);
  let preDim = 0;
  if (sameD && D > 0) {
    // members' pre-logits concatenated per example (the E³ few-shot convention)
    preDim = parts.reduce((a, p) => a + p.preLogitsDim, 0);
    preLogits = new Float32Array(first.n * preDim);
    for (let i = 0; i < first.n; i++) {
      let o = i * preDim;
      for (const p of parts) {
        preLogits.set(p.preLogits.subarray(i * p.preLogitsDim, (i + 1) * p.preLogitsDim), o);
        o += p.preLogitsDim;
      }
    }
  }
  return {
    n: first.n,
    numClasses: first.numClasses,
    members,
    logits,
    preLogits,
    preLogitsDim: preDim,
    labels: first.labels,
    router: parts.flatMap((p) => p.router),
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
  };
}

/** What an ensemble member needs to run: the model and how its inputs are scaled (a loaded checkpoint fits). */
export interface EnsembleMember {
  model: VisionMoE;
  config: { model: ModelConfig; data: { scale: PixelScale } };
}

/** Options of `ensembleOutputs`: batch size, routing overrides, MC-dropout passes and their RNG. */
export interface EnsembleRunOptions {
  batchSize: number;
  routing: RoutingOverrides;
  /** MC-dropout passes per model; 0 = one pass with dropout off. */
  mcSamples: number;
  rng: Rng;
  keepPreLogits?: boolean;
  /** Called after each batch with the model's label, the examples done and the total. */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** Runs every model (and MC sample) over one data set and stacks the members. */
export function ensembleOutputs(models: EnsembleMember[], ds: ImageDataset, opts: EnsembleRunOptions): Outputs {
  const parts: Outputs[] = [];
  for (const l of models) {
    const passes = opts.mcSamples > 0 ? opts.mcSamples : 1;
    for (let s = 0; s < passes; s++) {
      parts.push(
        computeOutputs(l.model, ds, {
          batchSize: opts.batchSize,
          scale: l.config.data.scale,
          routing: opts.routing,
          keepPreLogits: opts.keepPreLogits,
          mcDropout: opts.mcSamples > 0,
          rng: opts.mcSamples > 0 ? opts.rng : undefined,
          onBatch: (d, t) => opts.onProgress?.(ds.name, d, t),
        }),
      );
    }
  }
  return parts.length === 1 ? parts[0]! : stackOutputs(parts);
}

/** FLOPs per image of the whole ensemble: every model, every MC pass. */
export function ensembleFlops(models: EnsembleMember[], routing: RoutingOverrides, mcSamples: number): number {
  return models.reduce((a, l) => a + flopsPerImage(l.config.model, routing).total, 0) * Math.max(1, mcSamples);
}
