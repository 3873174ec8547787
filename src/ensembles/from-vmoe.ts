/**
 * E³ initialised from a V-MoE: every parameter is copied; the router kernel
 * (H, E) becomes the per-member routers (H, M, E/M). Row-major these hold the
 * same numbers, so member m inherits experts [m·E/M, (m+1)·E/M) together with
 * their router columns, and its gates start as the V-MoE's restricted to them and renormalised.
 */
import type { ModelConfig } from '../vmoe/config.js';
import { paramSpecs } from '../vmoe/params.js';
import { CheckpointError } from '../util/errors.js';

/** Parameter values by name: shape and flat row-major data (what `VisionMoE.fromValues` takes). */
export type ParamValues = Map<string, { shape: number[]; data: Float32Array }>;

/** Whether a source parameter is a router kernel with the target's numbers in another shape ((H, E) ↔ (H, M, E/M)). */
export function isReshapedRouterKernel(name: string, sourceSize: number, targetSize: number): boolean {
  return sourceSize === targetSize && name.endsWith('/router/kernel');
}

/** The parameters of an E³ model of config `e3`, from a V-MoE's (`VisionMoE.values()`, checkpoint tensors). */
export function e3ValuesFromVmoe(vmoe: ParamValues, e3: ModelConfig): ParamValues {
  const out: ParamValues = new Map();
  for (const [name, spec] of paramSpecs(e3)) {
    const v = vmoe.get(name);
    if (!v) throw new CheckpointError(`the V-MoE has no parameter ${name}`);
    const targetSize = spec.shape.reduce((a, d) => a * d, 1);
    if (v.shape.join(',') !== spec.shape.join(',') && !isReshapedRouterKernel(name, v.data.length, targetSize)) {
      throw new CheckpointError(
        `parameter ${name}: the V-MoE's [${v.shape}] does not fit the E³ model's [${spec.shape}]`,
      );
    }
    out.set(name, { shape: spec.shape.slice(), data: v.data });
  }
  return out;
}
