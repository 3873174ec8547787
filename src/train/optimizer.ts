/**
 * Adam / AdamW with decoupled weight decay on kernels, SGD with momentum (the
 * reference fine-tuning recipe), learning-rate schedules and global-norm
 * gradient clipping. State lives in named tensors (slots) so it can be
 * checkpointed and restored exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasKernel, VMOE_ADAM, VMOE_SUM_OF_SQUARES } from '../engine/fused-kernels.js';
import type { ExperimentConfig } from '../config/experiment.js';

export type OptimConfig = ExperimentConfig['optim'];

/** Learning rate at 1-based step `step` of `total`. */
export function learningRate(o: OptimConfig, step: number, total: number): number {
  if (o.warmupSteps > 0 && step <= o.warmupSteps) return (o.lr * step) / o.warmupSteps;
  if (o.schedule === 'constant') return o.lr;
  const span = Math.max(1, total - o.warmupSteps);
  const frac = Math.min(1, Math.max(0, (step - o.warmupSteps) / span));
  const floor = o.lr * o.minLrRatio;
  if (o.schedule === 'linear') return floor + (o.lr - floor) * (1 - frac);
  return floor + (o.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * frac));
}

/**
 * What the trainer needs of an optimizer: one update from named gradients, the update count, and its state as
 * named slots (Adam: `m`, `v`; SGD: `momentum`), each a map from parameter name to a tensor of its shape, which
 * checkpoints store as `opt/<slot>/<param>`.
 */
export interface Optimizer {
  /** Number of updates applied so far. */
  t: number;
  /** The state slots by slot name; a resumed run refills these maps before the first update. */
  slots(): ReadonlyArray<readonly [string, Map<string, tf.Variable>]>;
  /** Applies one update at learning rate lr; returns the global gradient norm before clipping. */
  apply(params: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>, lr: number): number;
  dispose(): void;
}

/** The optimizer `cfg.optimizer` names; `decayed` says which parameters get weight decay (AdamW). */
export function makeOptimizer(cfg: OptimConfig, decayed: (name: string) => boolean): Optimizer {
  return cfg.optimizer === 'sgd' ? new SgdMomentum(cfg) : new Adam(cfg, decayed);
}

/**
 * Global L2 norm of the gradients and the factor that clips it to `clip` (1 when no clipping applies):
 * every gradient is multiplied by clip/‖g‖ when ‖g‖ > clip.
 */
export function globalNormClip(grads: Record<string, tf.Tensor>, clip: number | null): { norm: number; scale: number } {
  const names = Object.keys(grads);
  // One fused kernel where the backend has it (the composed norm is two kernels per parameter).
  const fusedNorm = hasKernel(VMOE_SUM_OF_SQUARES) && names.every((n) => grads[n]!.dtype === 'float32');
  const sq = fusedNorm
    ? (tf
        .engine()
        .runKernel(VMOE_SUM_OF_SQUARES, Object.fromEntries(names.map((n, i) => [String(i), grads[n]!]))) as tf.Scalar)
    : tf.tidy(() => tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!)))));
  const norm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  return { norm, scale: clip !== null && norm > clip ? clip / norm : 1 };
}

function zeroSlot(map: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
  let s = map.get(name);
  if (!s) {
    // In a tidy, so the zeros tensor is freed and the slot alone holds its buffer.
    s = tf.tidy(() => tf.variable(tf.zerosLike(like), false));
    map.set(name, s);
  }
  return s;
}

/**
 * SGD with heavy-ball momentum μ, as optax's `sgd(lr, momentum)` the reference fine-tunes with:
 * buf ← g + μ·buf, p ← p − lr·buf, g clipped to the global norm first. No weight decay (the reference's
 * fine-tuning uses none; optim.weightDecay applies to adamw only).
 */
export class SgdMomentum implements Optimizer {
  readonly momentum = new Map<string, tf.Variable>();
  t = 0;

  constructor(readonly cfg: OptimConfig) {}

  slots(): ReadonlyArray<readonly [string, Map<string, tf.Variable>]> {
    return [['momentum', this.momentum]];
  }

  apply(params: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>, lr: number): number {
    const { norm, scale } = globalNormClip(grads, this.cfg.gradClipNorm);
    this.t += 1;
    const mu = this.cfg.momentum;
    for (const name of Object.keys(grads)) {
      const p = params.get(name)!;
      tf.tidy(() => {
        const g = scale === 1 ? grads[name]! : tf.mul(grads[name]!, scale);
        let update = g;
        if (mu > 0) {
          const buf = zeroSlot(this.momentum, name, p);
          update = tf.add(g, tf.mul(buf, mu));
          buf.assign(update);
        }
        p.assign(tf.sub(p, tf.mul(update, lr)));
      });
    }
    return norm;
  }

  dispose(): void {
    for (const s of this.momentum.values()) s.dispose();
    this.momentum.clear();
  }
}

/** Adam, or AdamW (decoupled weight decay on the parameters `decayed` names), with global-norm clipping. */
export class Adam implements Optimizer {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  /** Number of updates applied so far. */
  t = 0;

  constructor(
    readonly cfg: OptimConfig,
    private readonly decayed: (name: string) => boolean,
  ) {}

  slots(): ReadonlyArray<readonly [string, Map<string, tf.Variable>]> {
    return [
      ['m', this.m],
      ['v', this.v],
    ];
  }

  /**
   * Applies one update. grads are by parameter name. Returns the global gradient
   * norm before clipping.
   */
  apply(params: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>, lr: number): number {
    const names = Object.keys(grads);
    const { norm: gnorm, scale } = globalNormClip(grads, this.cfg.gradClipNorm);
    this.t += 1;
    const { beta1: b1, beta2: b2, eps } = this.cfg;
    const bc1 = 1 - Math.pow(b1, this.t);
    const bc2 = 1 - Math.pow(b2, this.t);
    const wd = this.cfg.optimizer === 'adamw' ? this.cfg.weightDecay : 0;
    const fusedStep = hasKernel(VMOE_ADAM);
    for (const name of names) {
      const p = params.get(name)!;
      const m = zeroSlot(this.m, name, p);
      const v = zeroSlot(this.v, name, p);
      if (fusedStep && p.dtype === 'float32' && grads[name]!.dtype === 'float32') {
        // The step below as one kernel (it is ~12 kernels per parameter composed).
        tf.tidy(() => {
          const attrs = {
            beta1: b1,
            beta2: b2,
            stepSize: lr / bc1,
            biasCorrection2: bc2,
            epsilon: eps,
            weightDecayStep: wd > 0 && this.decayed(name) ? lr * wd : 0,
            gradScale: scale,
          };
          const [pNew, mNew, vNew] = tf
            .engine()
            .runKernel(VMOE_ADAM, { param: p, m, v, grad: grads[name]! }, attrs) as tf.Tensor[];
          m.assign(mNew!);
          v.assign(vNew!);
          p.assign(pNew!);
        });
        continue;
      }
      tf.tidy(() => {
        const g = scale === 1 ? grads[name]! : tf.mul(grads[name]!, scale);
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const stepSize = lr / bc1;
        let update = tf.div(tf.mul(mNew, stepSize), tf.add(tf.sqrt(tf.div(vNew, bc2)), eps));
        if (wd > 0 && this.decayed(name)) update = tf.add(update, tf.mul(p, lr * wd));
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.sub(p, update));
      });
    }
    return gnorm;
  }

  dispose(): void {
    for (const s of [...this.m.values(), ...this.v.values()]) s.dispose();
    this.m.clear();
    this.v.clear();
  }
}
