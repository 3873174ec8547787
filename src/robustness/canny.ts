/** Canny edge detector on a grey plane: the MNIST-C "canny_edges" corruption keeps only the edges. */
import { borderIndex, gaussianBlurPlane } from './image-ops.js';

export interface CannyOptions {
  /** Gaussian smoothing σ before the gradient (skimage's default 1). */
  sigma?: number;
  /** Hysteresis thresholds on the Sobel gradient magnitude (skimage's defaults for float images). */
  low?: number;
  high?: number;
}

/**
 * Returns a (H, W) plane of 0/1 edges: Gaussian smoothing, Sobel gradient,
 * non-maximum suppression along the gradient direction quantised to 0°, 45°,
 * 90°, 135°, then hysteresis (weak edges kept where 8-connected to a strong one).
 * The one-pixel frame is never an edge (as skimage, which erodes its mask).
 */
export function cannyEdges(plane: Float32Array, h: number, w: number, opts: CannyOptions = {}): Float32Array {
  const { sigma = 1, low = 0.1, high = 0.2 } = opts;
  const sm = gaussianBlurPlane(plane, h, w, sigma, 'nearest');
  const at = (y: number, x: number): number => sm[borderIndex(y, h, 'nearest') * w + borderIndex(x, w, 'nearest')]!;
  const gy = new Float32Array(h * w);
  const gx = new Float32Array(h * w);
  const mag = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const vy =
        at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y - 1, x) - at(y - 1, x + 1);
      const vx =
        at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y, x - 1) - at(y + 1, x - 1);
      gy[y * w + x] = vy;
      gx[y * w + x] = vx;
      mag[y * w + x] = Math.hypot(vy, vx);
    }
  }
  const nms = new Float32Array(h * w);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const m = mag[y * w + x]!;
      if (m < low) continue;
      let angle = (Math.atan2(gy[y * w + x]!, gx[y * w + x]!) * 180) / Math.PI;
      if (angle < 0) angle += 180;
      // neighbours (dy, dx) along the gradient direction
      let dy = 0;
      let dx = 1;
      if (angle >= 22.5 && angle < 67.5) [dy, dx] = [1, 1];
      else if (angle >= 67.5 && angle < 112.5) [dy, dx] = [1, 0];
      else if (angle >= 112.5 && angle < 157.5) [dy, dx] = [1, -1];
      const a = mag[(y + dy) * w + x + dx]!;
      const b = mag[(y - dy) * w + x - dx]!;
      if (m >= a && m >= b && (m > a || m > b)) nms[y * w + x] = m;
    }
  }
  const out = new Float32Array(h * w);
  const stack: number[] = [];
  for (let i = 0; i < nms.length; i++) {
    if (nms[i]! >= high && out[i] === 0) {
      out[i] = 1;
      stack.push(i);
    }
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    const y = Math.floor(i / w);
    const x = i % w;
    for (let yy = y - 1; yy <= y + 1; yy++) {
      for (let xx = x - 1; xx <= x + 1; xx++) {
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const j = yy * w + xx;
        if (out[j] === 0 && nms[j]! >= low) {
          out[j] = 1;
          stack.push(j);
        }
      }
    }
  }
  return out;
}
