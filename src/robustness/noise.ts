/** Pixel-noise corruptions; each takes its severity constant directly. x in [0, 1]. */
import type { Rng } from '../util/rng.js';
import { clip01InPlace, poisson } from './image-ops.js';

/** x + N(0, σ²) per value, clipped. */
export function gaussianNoise(img: Float32Array, sigma: number, rng: Rng): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = img[i]! + sigma * rng.normal();
  return clip01InPlace(out);
}

/** Poisson(x·λ)/λ per value: photon counting with λ photons at full intensity (mean x, variance x/λ). */
export function shotNoise(img: Float32Array, photons: number, rng: Rng): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = poisson(img[i]! * photons, rng) / photons;
  return clip01InPlace(out);
}

/** Salt and pepper: each value independently, with probability `amount`, becomes 0 or 1 (even odds). */
export function impulseNoise(img: Float32Array, amount: number, rng: Rng): Float32Array {
  const out = img.slice();
  for (let i = 0; i < img.length; i++) {
    const flip = rng.uniform() < amount;
    const salt = rng.uniform() < 0.5; // drawn always, so the stream does not depend on `amount`
    if (flip) out[i] = salt ? 1 : 0;
  }
  return out;
}

/** Multiplicative noise x + x·N(0, σ²), clipped. */
export function speckleNoise(img: Float32Array, sigma: number, rng: Rng): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = img[i]! * (1 + sigma * rng.normal());
  return clip01InPlace(out);
}
