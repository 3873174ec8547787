/**
 * Images into model pixels, the same way in every browser: the picture is centred on a black square as large as
 * its longer side (aspect ratio kept), that square is shrunk (or grown) to S×S by area averaging — each output pixel
 * is the mean of the source area it covers, so an image that is an exact multiple of S gives back its blocks' means
 * exactly — and one-channel models get grey = ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B).
 */

/** 1-D area-averaging weights: for each of `n` outputs over `m` inputs, the (input index, weight) pairs. */
function areaWeights(m: number, n: number): [number, number][][] {
  const scale = m / n;
  return Array.from({ length: n }, (_, o) => {
    const lo = o * scale;
    const hi = (o + 1) * scale;
    const out: [number, number][] = [];
    for (let i = Math.floor(lo); i < Math.min(m, Math.ceil(hi)); i++) {
      const w = Math.min(hi, i + 1) - Math.max(lo, i);
      if (w > 0) out.push([i, w / scale]);
    }
    return out;
  });
}

/**
 * RGBA pixels (h, w, 4) of a picture → model pixels (S, S, C) uint8: padded to a black square, area-averaged to
 * S×S, grey by luma when C = 1 (`invert` flips the grey levels, for dark objects on a light background).
 */
export function toModelPixels(
  rgba: Uint8ClampedArray,
  w: number,
  h: number,
  S: number,
  C: number,
  invert = false,
): Uint8Array {
  const L = Math.max(w, h);
  const x0 = Math.floor((L - w) / 2);
  const y0 = Math.floor((L - h) / 2);
  const wx = areaWeights(L, S);
  // rows first: (L, S, 3) holding each source row averaged over the output columns
  const rows = new Float64Array(L * S * 3);
  for (let y = 0; y < h; y++) {
    for (let o = 0; o < S; o++) {
      for (const [xs, wgt] of wx[o]!) {
        const x = xs - x0;
        if (x < 0 || x >= w) continue; // padding is black
        const s = 4 * (y * w + x);
        const d = 3 * ((y + y0) * S + o);
        rows[d] = rows[d]! + wgt * rgba[s]!;
        rows[d + 1] = rows[d + 1]! + wgt * rgba[s + 1]!;
        rows[d + 2] = rows[d + 2]! + wgt * rgba[s + 2]!;
      }
    }
  }
  const out = new Uint8Array(S * S * C);
  for (let oy = 0; oy < S; oy++) {
    for (let ox = 0; ox < S; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [ys, wgt] of wx[oy]!) {
        const d = 3 * (ys * S + ox);
        r += wgt * rows[d]!;
        g += wgt * rows[d + 1]!;
        b += wgt * rows[d + 2]!;
      }
      const i = oy * S + ox;
      const flip = (v: number) => Math.min(255, Math.max(0, Math.round(invert ? 255 - v : v)));
      if (C === 1) out[i] = flip(0.299 * r + 0.587 * g + 0.114 * b);
      else [r, g, b].forEach((v, j) => (out[i * C + j] = flip(v)));
    }
  }
  return out;
}
