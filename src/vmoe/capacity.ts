/**
 * Expert buffer capacity per routing group (docs/spec/routing.md §4).
 *
 * Float fuzz: a capacity factor is a decimal typed by a person (1.05, 1.1, …) and
 * has no exact binary form, so S·K·c/E can land a few ULPs above an integer
 * (100·1.1/10 = 11.000000000000002 in IEEE doubles). A plain ceil would then add a
 * whole slot the user never asked for. Values within a relative 1e-9 of an integer
 * (or, for 'round', of a half-integer) are treated as that exact value before
 * rounding. 1e-9 is ~10⁷ ULPs (far above any product/quotient error) yet far below
 * any difference a real capacity factor would express.
 */
import { UsageError } from '../util/errors.js';

/**
 * How S·K·c/E becomes an integer capacity: `multiple-of-4` (reference code), `round` (the paper) or `none` (ceil).
 */
export type CapacityRounding = 'multiple-of-4' | 'round' | 'none';

/** Every `CapacityRounding`. */
export const CAPACITY_ROUNDINGS: readonly CapacityRounding[] = ['multiple-of-4', 'round', 'none'];

const RELATIVE_FUZZ = 1e-9;

function fuzz(x: number): number {
  return RELATIVE_FUZZ * Math.max(1, Math.abs(x));
}

/** ceil(x), but x a few ULPs above an integer stays that integer. */
export function fuzzyCeil(x: number): number {
  return Math.ceil(x - fuzz(x));
}

/** Round half up (like Math.round), but x a few ULPs below a half-integer still rounds up. */
export function fuzzyRound(x: number): number {
  return Math.floor(x + 0.5 + fuzz(x));
}

function checkPositiveInt(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`${field} must be an integer ≥ 1, got ${value}`);
  }
}

function checkFactor(value: number, field: string): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${field} must be a finite number > 0, got ${value}`);
  }
}

/** Options of `expertCapacity`: group size S, experts E, k, and a capacity factor c or an absolute capacity. */
export interface ExpertCapacityOptions {
  /** S: tokens per routing group. */
  groupSize: number;
  /** E: number of experts. */
  numExperts: number;
  /** K: experts selected per token. */
  k: number;
  /** c: capacity factor (exactly one of capacityFactor / capacity). */
  capacityFactor?: number;
  /** Absolute capacity C, used as is. */
  capacity?: number;
  /** How S·K·c/E becomes an integer; default 'multiple-of-4' (the reference code). */
  rounding?: CapacityRounding;
}

/**
 * Slots per expert per group for top-k routing:
 * - 'multiple-of-4' (default, reference code): ceil(S·K·c/E) rounded up to a multiple of 4;
 * - 'round' (the paper): round(S·K·c/E), half up, no multiple-of-4 step;
 * - 'none': ceil(S·K·c/E).
 * An absolute `capacity` is returned unchanged (no rounding applies).
 */
export function expertCapacity(opts: ExpertCapacityOptions): number {
  const { groupSize, numExperts, k, capacityFactor, capacity } = opts;
  const rounding = opts.rounding ?? 'multiple-of-4';
  checkPositiveInt(groupSize, 'groupSize');
  checkPositiveInt(numExperts, 'numExperts');
  checkPositiveInt(k, 'k');
  if (!CAPACITY_ROUNDINGS.includes(rounding)) {
    throw new UsageError(`rounding must be one of ${CAPACITY_ROUNDINGS.join(', ')}, got '${String(rounding)}'`);
  }
  const hasFactor = capacityFactor !== undefined && capacityFactor !== null;
  const hasCapacity = capacity !== undefined && capacity !== null;
  if (hasFactor === hasCapacity) {
    throw new UsageError(
      `give exactly one of capacity / capacityFactor (got capacity=${capacity}, capacityFactor=${capacityFactor})`,
    );
  }
  if (hasCapacity) {
    checkPositiveInt(capacity, 'capacity');
    return capacity;
  }
  checkFactor(capacityFactor!, 'capacityFactor');
  const ideal = (groupSize * k * capacityFactor!) / numExperts;
  let c: number;
  if (rounding === 'round') {
    c = fuzzyRound(ideal);
  } else {
    c = fuzzyCeil(ideal);
  }
  if (c < 1) {
    throw new UsageError(
      `expert capacity ${c} < 1 from groupSize=${groupSize}, k=${k}, capacityFactor=${capacityFactor}, ` +
        `numExperts=${numExperts}, rounding=${rounding} (S·K·c/E = ${ideal}); raise the capacity factor or group size`,
    );
  }
  if (rounding === 'multiple-of-4') c = Math.ceil(c / 4) * 4;
  return c;
}

/**
 * Slots per expert per group for expert-choice routing: ceil(S·c/E) (no multiple-of-4
 * step, so each expert takes exactly the share the factor asks for).
 */
export function expertChoiceCapacity(opts: { groupSize: number; numExperts: number; capacityFactor: number }): number {
  const { groupSize, numExperts, capacityFactor } = opts;
  checkPositiveInt(groupSize, 'groupSize');
  checkPositiveInt(numExperts, 'numExperts');
  checkFactor(capacityFactor, 'capacityFactor');
  const ideal = (groupSize * capacityFactor) / numExperts;
  const c = fuzzyCeil(ideal);
  if (c < 1) {
    throw new UsageError(
      `expert-choice capacity ${c} < 1 from groupSize=${groupSize}, capacityFactor=${capacityFactor}, ` +
        `numExperts=${numExperts} (S·c/E = ${ideal})`,
    );
  }
  return c;
}
