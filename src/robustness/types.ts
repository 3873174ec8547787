import type { Rng } from '../util/rng.js';
import { CorruptionError } from '../util/errors.js';

/**
 * A corruption: image (H, W, C) in [0, 1] → a new image (H, W, C) in [0, 1].
 * Severity 0 returns an equal copy; the same Rng state gives the same output.
 */
export type CorruptionFn = (
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  severity: number,
  rng: Rng,
) => Float32Array;

/** The kind of a corruption, as ImageNet-C / MNIST-C group them. */
export type CorruptionFamily = 'noise' | 'blur' | 'weather' | 'digital' | 'geometric' | 'overlay';

/**
 * A corruption of the Fashion-MNIST-C suite: its function, family, the constants for severities 1–5, and whether
 * it is held out of the benchmark average.
 */
export interface CorruptionSpec {
  fn: CorruptionFn;
  family: CorruptionFamily;
  /** The constant for severities 1..5 (index 0 = severity 1), for 28×28 images. */
  constants: unknown[];
  /** One of the four corruptions ImageNet-C keeps out of the benchmark average. */
  heldOut: boolean;
}

export function checkSeverity(severity: number, who: string, max = 5): void {
  if (!Number.isInteger(severity) || severity < 0 || severity > max) {
    throw new CorruptionError(`${who}: severity must be an integer in 0..${max}, got ${severity}`);
  }
}
