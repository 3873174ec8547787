/** Position embeddings on another patch grid: bilinear, corners aligned, class row kept (src/vmoe/posembed.ts). */
import { describe, expect, it } from 'vitest';
import { gridOfTokens, resampleGrid, resamplePositionEmbedding } from '../../src/vmoe/posembed.js';
import { CheckpointError } from '../../src/util/errors.js';

const close = (got: Float32Array, want: number[]) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i], `index ${i}`).toBeCloseTo(w, 6));
};

describe('resampleGrid', () => {
  it('2×2 → 3×3: the new samples lie half-way (hand-computed)', () => {
    // [[0, 1], [2, 3]]: output coordinates 0, 0.5, 1 on both axes
    close(resampleGrid(Float32Array.from([0, 1, 2, 3]), 2, 3, 1), [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
  });

  it('2×2 → 4×4 with two channels: thirds, each channel on its own', () => {
    // channel 0 = [[0, 3], [6, 9]], channel 1 = its negation; coordinates 0, 1/3, 2/3, 1
    const src = Float32Array.from([0, -0, 3, -3, 6, -6, 9, -9]);
    const out = resampleGrid(src, 2, 4, 2);
    const want0 = [0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9];
    close(
      out.filter((_, i) => i % 2 === 0),
      want0,
    );
    close(
      out.filter((_, i) => i % 2 === 1),
      want0.map((v) => -v),
    );
  });

  it('3×3 → 2×2 keeps the corners; 3×3 → 1×1 reads the first sample', () => {
    const src = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    close(resampleGrid(src, 3, 2, 1), [0, 2, 6, 8]);
    close(resampleGrid(src, 3, 1, 1), [0]);
  });

  it('3×3 → 5×5: the centre of each cell is the mean of its four corners', () => {
    const src = Float32Array.from([1, 4, 2, 0, 8, 3, 5, 7, 6]);
    const out = resampleGrid(src, 3, 5, 1);
    // output (1, 1) reads (0.5, 0.5): mean of 1, 4, 0, 8; output (3, 2) reads (1.5, 1): mean of 8 and 7
    expect(out[1 * 5 + 1]).toBeCloseTo((1 + 4 + 0 + 8) / 4, 6);
    expect(out[3 * 5 + 2]).toBeCloseTo((8 + 7) / 2, 6);
    expect(out[2 * 5 + 2]).toBeCloseTo(8, 6); // the centre sample itself
  });

  it('is the identity when the grid size is unchanged', () => {
    const src = Float32Array.from({ length: 4 * 4 * 3 }, (_, i) => Math.sin(i) * 3);
    expect(Array.from(resampleGrid(src, 4, 4, 3))).toEqual(Array.from(src));
  });
});

describe('resamplePositionEmbedding', () => {
  const H = 2;
  // class row (10, 20), then the 2×2 grid of two channels
  const withCls = Float32Array.from([10, 20, 0, 0, 1, 1, 2, 2, 3, 3]);

  it('keeps the class row and resamples the grid (2×2 + cls → 3×3 + cls)', () => {
    const out = resamplePositionEmbedding(withCls, 5, H, 10, true);
    expect(Array.from(out.subarray(0, 2))).toEqual([10, 20]);
    close(
      out.subarray(2).filter((_, i) => i % 2 === 0),
      [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3],
    );
  });

  it('returns the same table when the grid is unchanged', () => {
    expect(Array.from(resamplePositionEmbedding(withCls, 5, H, 5, true))).toEqual(Array.from(withCls));
  });

  it('drops the class row for a GAP model and takes the model’s own for a source without one', () => {
    close(resamplePositionEmbedding(withCls, 5, H, 4, false), [0, 0, 1, 1, 2, 2, 3, 3]);
    const gap = withCls.subarray(2);
    const out = resamplePositionEmbedding(gap, 4, H, 5, true, Float32Array.from([7, 8]));
    expect(Array.from(out)).toEqual([7, 8, 0, 0, 1, 1, 2, 2, 3, 3]);
  });

  it('refuses tables that are not square grids', () => {
    expect(gridOfTokens(50)).toEqual({ grid: 7, hasCls: true });
    expect(gridOfTokens(49)).toEqual({ grid: 7, hasCls: false });
    expect(gridOfTokens(7)).toBeNull();
    expect(() => resamplePositionEmbedding(new Float32Array(7 * H), 7, H, 5, true)).toThrow(CheckpointError);
    expect(() => resamplePositionEmbedding(withCls, 5, H, 7, true)).toThrow(/6 patches are not a square grid/);
  });
});
