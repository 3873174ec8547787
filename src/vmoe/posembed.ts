/**
 * Position embeddings for another patch grid (fine-tuning at a new resolution), per docs/spec/model.md §3.3: the
 * grid part of a (T, H) table is resampled with bilinear interpolation on the patch grid, corners aligned, and the
 * class-token row is kept, as the reference does (scipy.ndimage.zoom with order 1). Pure maths on Float32Arrays.
 */
import { CheckpointError } from '../util/errors.js';

/**
 * Source coordinate of output index o when n input samples are stretched over m outputs with the end samples
 * aligned (scipy.ndimage.zoom's default, grid_mode=False): o·(n−1)/(m−1); a single output reads input 0.
 */
function sourceCoordinate(o: number, n: number, m: number): number {
  return m > 1 ? (o * (n - 1)) / (m - 1) : 0;
}

/**
 * Bilinear resample of a (gs, gs, H) grid, row-major, to (gt, gt, H), corners aligned: output (i, j) reads input
 * (i·(gs−1)/(gt−1), j·(gs−1)/(gt−1)), interpolated between its four neighbours. gt = gs returns a copy.
 */
export function resampleGrid(src: Float32Array, gs: number, gt: number, H: number): Float32Array {
  if (src.length !== gs * gs * H) throw new Error(`resampleGrid: ${src.length} values are not a ${gs}×${gs}×${H} grid`);
  const out = new Float32Array(gt * gt * H);
  // Separable: the 1-D weights of rows and columns are the same.
  const lo = new Int32Array(gt),
    hi = new Int32Array(gt),
    w = new Float64Array(gt);
  for (let o = 0; o < gt; o++) {
    const c = sourceCoordinate(o, gs, gt);
    const l = Math.min(Math.floor(c), gs - 1);
    lo[o] = l;
    hi[o] = Math.min(l + 1, gs - 1);
    w[o] = c - l; // weight of the upper neighbour
  }
  for (let i = 0; i < gt; i++) {
    for (let j = 0; j < gt; j++) {
      const wi = w[i]!,
        wj = w[j]!;
      const a = (lo[i]! * gs + lo[j]!) * H, // (lo, lo)
        b = (lo[i]! * gs + hi[j]!) * H, // (lo, hi)
        c = (hi[i]! * gs + lo[j]!) * H, // (hi, lo)
        d = (hi[i]! * gs + hi[j]!) * H; // (hi, hi)
      const base = (i * gt + j) * H;
      for (let h = 0; h < H; h++) {
        const top = src[a + h]! * (1 - wj) + src[b + h]! * wj;
        const bottom = src[c + h]! * (1 - wj) + src[d + h]! * wj;
        out[base + h] = top * (1 - wi) + bottom * wi;
      }
    }
  }
  return out;
}

/** The square patch grid side of a position table with `tokens` rows, and whether it has a class-token row. */
export function gridOfTokens(tokens: number): { grid: number; hasCls: boolean } | null {
  const g = Math.floor(Math.sqrt(tokens) + 1e-9);
  if (g * g === tokens) return { grid: g, hasCls: false };
  const g1 = Math.floor(Math.sqrt(tokens - 1) + 1e-9);
  if (tokens > 1 && g1 * g1 === tokens - 1) return { grid: g1, hasCls: true };
  return null;
}

/**
 * A position table (srcTokens, H), row-major, for a model with `targetTokens` rows (`targetHasCls`: its first row
 * is the class token's). Whether the source has a class row is read from its row count (g² + 1 rows) as the
 * reference does. The class row is copied; where the source has none, the target's own `targetCls` row is used.
 * The grid rows are resampled by `resampleGrid`. Throws a CheckpointError naming `what` when a table is not a
 * square grid.
 */
export function resamplePositionEmbedding(
  src: Float32Array,
  srcTokens: number,
  H: number,
  targetTokens: number,
  targetHasCls: boolean,
  targetCls: Float32Array | null = null,
  what = 'pos',
): Float32Array {
  const s = gridOfTokens(srcTokens);
  if (!s)
    throw new CheckpointError(`${what}: ${srcTokens} position rows are neither a square grid nor one plus a class row`);
  const gridTokens = targetTokens - (targetHasCls ? 1 : 0);
  const gt = Math.round(Math.sqrt(gridTokens));
  if (gt * gt !== gridTokens)
    throw new CheckpointError(`${what}: the model's ${gridTokens} patches are not a square grid`);
  const off = s.hasCls ? 1 : 0;
  const grid = resampleGrid(src.subarray(off * H, (off + s.grid * s.grid) * H), s.grid, gt, H);
  if (!targetHasCls) return grid;
  const out = new Float32Array(targetTokens * H);
  if (s.hasCls) out.set(src.subarray(0, H), 0);
  else if (targetCls) out.set(targetCls.subarray(0, H), 0);
  out.set(grid, H);
  return out;
}
