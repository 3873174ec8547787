/** Weather and overlay corruptions: snow, frost, fog, spatter. */
import type { Rng } from '../util/rng.js';
import {
  centreZoom,
  clip01,
  clip01InPlace,
  gaussianBlurPlane,
  luma,
  motionBlurPlane,
  pixelScale,
  plasmaPlane,
  toGray,
  uniformIn,
} from './image-ops.js';

export interface SnowConstant {
  /** Mean and spread of the Gaussian snow field before thresholding. */
  loc: number;
  scale: number;
  /** Centre zoom of the field (bigger flakes), relative so size-free. */
  zoom: number;
  threshold: number;
  /** Motion blur of the flakes (pixels at 28×28). */
  radius: number;
  sigma: number;
  /** Weight of the original image against its brightened, washed-out version. */
  blend: number;
}

/**
 * Falling snow: a thresholded Gaussian field, zoomed and motion-blurred downwards
 * (angle in [−135°, −45°]), added twice (once turned by 180°) over an image
 * brightened towards white as in overcast light: max(x, 1.5·grey + 0.5).
 */
export function snow(img: Float32Array, h: number, w: number, c: number, k: SnowConstant, rng: Rng): Float32Array {
  const s = pixelScale(h, w);
  let layer: Float32Array = new Float32Array(h * w); // (H, W)
  for (let i = 0; i < layer.length; i++) layer[i] = k.loc + k.scale * rng.normal();
  layer = centreZoom(layer, h, w, k.zoom);
  for (let i = 0; i < layer.length; i++) layer[i] = layer[i]! < k.threshold ? 0 : clip01(layer[i]!);
  const angle = uniformIn(rng, -135, -45);
  layer = motionBlurPlane(layer, h, w, k.radius * s, k.sigma * s, angle);
  const gray = toGray(img, h, w, c);
  const out = new Float32Array(img.length);
  for (let p = 0; p < h * w; p++) {
    const flakes = layer[p]! + layer[h * w - 1 - p]!; // the layer and its 180° rotation
    const washed = 1.5 * gray[p]! + 0.5;
    for (let ch = 0; ch < c; ch++) {
      const x = img[p * c + ch]!;
      out[p * c + ch] = k.blend * x + (1 - k.blend) * Math.max(x, washed) + flakes;
    }
  }
  return clip01InPlace(out);
}

/**
 * A procedural ice texture (H, W) in [0, 1] standing in for the frost photographs
 * ImageNet-C crops from: a plasma haze plus needle crystals that grow from random
 * seeds with a slight wander and branch at ±60° (the angle of ice dendrites).
 */
export function iceTexture(h: number, w: number, rng: Rng): Float32Array {
  const haze = plasmaPlane(h, w, 1.5, rng);
  const crystals = new Float32Array(h * w);
  const stamp = (py: number, px: number, v: number): void => {
    for (let y = Math.floor(py) - 1; y <= Math.ceil(py) + 1; y++) {
      for (let x = Math.floor(px) - 1; x <= Math.ceil(px) + 1; x++) {
        if (y < 0 || y >= h || x < 0 || x >= w) continue;
        const d = Math.hypot(y - py, x - px);
        const val = v * Math.max(0, 1 - d / 1.1);
        if (val > crystals[y * w + x]!) crystals[y * w + x] = val;
      }
    }
  };
  const grow = (y: number, x: number, angle: number, length: number, v: number, depth: number): void => {
    for (let t = 0; t < length; t += 0.5) {
      stamp(y, x, v);
      y += 0.5 * Math.sin(angle);
      x += 0.5 * Math.cos(angle);
      angle += 0.08 * rng.normal();
      if (depth < 2 && t > 1 && rng.uniform() < 0.12) {
        const side = rng.uniform() < 0.5 ? -1 : 1;
        grow(y, x, angle + (side * Math.PI) / 3, length * 0.45, v * 0.8, depth + 1);
      }
    }
  };
  const size = Math.min(h, w);
  const seeds = Math.max(3, Math.round((h * w) / 70));
  for (let i = 0; i < seeds; i++) {
    grow(
      rng.uniform() * h,
      rng.uniform() * w,
      rng.uniform() * 2 * Math.PI,
      uniformIn(rng, 0.25, 0.6) * size,
      uniformIn(rng, 0.5, 1),
      0,
    );
  }
  const tex = new Float32Array(h * w);
  for (let i = 0; i < tex.length; i++) tex[i] = clip01(0.15 + 0.55 * haze[i]! + 0.6 * crystals[i]!);
  return tex;
}

/** Frost tint for RGB: the reference textures are a pale blue-white. */
const FROST_TINT = [0.86, 0.93, 1.0];

export interface FrostConstant {
  /** Weight of the image. */
  image: number;
  /** Weight of the ice texture. */
  frost: number;
}

/** Ice on a window: image·a + texture·b (texture tinted blue-white for RGB). */
export function frost(img: Float32Array, h: number, w: number, c: number, k: FrostConstant, rng: Rng): Float32Array {
  const tex = iceTexture(h, w, rng);
  const out = new Float32Array(img.length);
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < c; ch++) {
      const tint = c === 3 ? FROST_TINT[ch]! : 1;
      out[p * c + ch] = k.image * img[p * c + ch]! + k.frost * tint * tex[p]!;
    }
  }
  return clip01InPlace(out);
}

export interface FogConstant {
  /** Strength of the added plasma fractal. */
  amount: number;
  /** Per-octave decay of the fractal (bigger → smoother fog). */
  decay: number;
  /** Side of the fractal the image window is cropped from (default: next power of two ≥ the image). */
  mapSize?: number;
}

/** Fog: add a plasma fractal, then rescale so the brightest value of the image stays where it was. */
export function fog(img: Float32Array, h: number, w: number, c: number, k: FogConstant, rng: Rng): Float32Array {
  let maxVal = 0;
  for (const v of img) if (v > maxVal) maxVal = v;
  const plasma = plasmaPlane(h, w, k.decay, rng, k.mapSize ?? 2);
  const out = new Float32Array(img.length);
  const gain = maxVal / (maxVal + k.amount);
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < c; ch++) out[p * c + ch] = (img[p * c + ch]! + k.amount * plasma[p]!) * gain;
  }
  return clip01InPlace(out);
}

export interface SpatterConstant {
  /** Gaussian liquid field N(loc, scale²), smoothed by σ (pixels at 28×28), cut at threshold. */
  loc: number;
  scale: number;
  sigma: number;
  threshold: number;
  /** Water: brightness of the drops. Mud: σ of the blob smoothing (pixels at 28×28). */
  intensity: number;
  mud: boolean;
  /** Grey level of mud on 1-channel images (default: luma of the mud colour; MNIST-C uses 63/255). */
  mudGray?: number;
}

const WATER_RGB = [175 / 255, 238 / 255, 238 / 255]; // pale turquoise
const MUD_RGB = [63 / 255, 42 / 255, 20 / 255]; // brown

function colourFor(rgb: number[], c: number, ch: number, gray?: number): number {
  if (c === 3) return rgb[ch]!;
  return gray ?? luma(rgb[0]!, rgb[1]!, rgb[2]!);
}

/**
 * Spatter on the lens. Water drops add pale turquoise, shaded by an emboss of the
 * drop mask so they look raised (a simplification of the reference's Canny +
 * distance-transform shading). Mud covers the image with opaque brown blobs.
 */
export function spatter(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  k: SpatterConstant,
  rng: Rng,
): Float32Array {
  const s = pixelScale(h, w);
  let liquid: Float32Array = new Float32Array(h * w); // (H, W)
  for (let i = 0; i < liquid.length; i++) liquid[i] = k.loc + k.scale * rng.normal();
  liquid = gaussianBlurPlane(liquid, h, w, k.sigma * s, 'reflect');
  const mask = new Float32Array(h * w);
  for (let i = 0; i < liquid.length; i++) {
    if (liquid[i]! < k.threshold) liquid[i] = 0;
    mask[i] = liquid[i]! > k.threshold ? 1 : 0;
  }
  const out = new Float32Array(img.length);
  if (k.mud) {
    const m = gaussianBlurPlane(mask, h, w, k.intensity * s, 'reflect');
    for (let p = 0; p < h * w; p++) {
      const cover = m[p]! < 0.8 ? 0 : m[p]!;
      for (let ch = 0; ch < c; ch++) {
        out[p * c + ch] = img[p * c + ch]! * (1 - cover) + colourFor(MUD_RGB, c, ch, k.mudGray) * cover;
      }
    }
    return clip01InPlace(out);
  }
  const relief = gaussianBlurPlane(mask, h, w, s, 'reflect');
  const m = new Float32Array(h * w);
  let mMax = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // light from the top-left: the drop side facing it is bright, the far side dim
      const up = relief[Math.max(0, y - 1) * w + Math.max(0, x - 1)]!;
      const down = relief[Math.min(h - 1, y + 1) * w + Math.min(w - 1, x + 1)]!;
      const shade = clip01(0.5 + 2 * (up - down));
      const v = liquid[y * w + x]! * shade;
      m[y * w + x] = v;
      if (v > mMax) mMax = v;
    }
  }
  for (let p = 0; p < h * w; p++) {
    const a = mMax > 0 ? (m[p]! / mMax) * k.intensity : 0;
    for (let ch = 0; ch < c; ch++) out[p * c + ch] = img[p * c + ch]! + a * colourFor(WATER_RGB, c, ch);
  }
  return clip01InPlace(out);
}
