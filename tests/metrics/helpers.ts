import type { Rng } from '../../src/util/rng.js';
import type { Logits } from '../../src/metrics/types.js';

/** Gaussian logits (M, N, K) scaled by `scale`; `m` omitted gives a single model (N, K). */
export function randomLogits(rng: Rng, n: number, k: number, m?: number, scale = 2): Logits {
  const data = new Float64Array((m ?? 1) * n * k);
  for (let i = 0; i < data.length; i++) data[i] = scale * rng.normal();
  return m === undefined ? { data, n, k } : { data, n, k, m };
}

export function randomLabels(rng: Rng, n: number, k: number): Int32Array {
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = rng.int(k);
  return y;
}

/** Draw one class from a probability row. */
export function sampleClass(rng: Rng, p: ArrayLike<number>, offset: number, k: number): number {
  let u = rng.uniform();
  for (let c = 0; c < k; c++) {
    u -= p[offset + c]!;
    if (u < 0) return c;
  }
  return k - 1;
}
