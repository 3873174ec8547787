/**
 * The conformal-prediction flags shared by `vmoe metrics` and `vmoe eval` (docs/conformal.md):
 * --conformal <methods>, --alpha <levels>, --conformal-seed <n>, --class-conditional, --randomized.
 * Strings in, typed ConformalEvalOptions out; every malformed flag is a UsageError naming it.
 */
import type { Command } from 'commander';
import type { ConformalEvalOptions } from '../eval/evaluators.js';
import { CONFORMAL_METHODS, type ConformalMethod } from '../metrics/index.js';
import { UsageError } from '../util/errors.js';

export interface ConformalFlags {
  conformal?: string;
  alpha?: string;
  conformalSeed?: string;
  classConditional?: boolean;
  randomized?: boolean;
}

/** Adds the conformal flags; `calibration` says where the calibration predictions come from (for the help text). */
export function addConformalOptions(cmd: Command, calibration: string): Command {
  return cmd
    .option(
      '--conformal <methods>',
      `split conformal prediction sets, calibrated on ${calibration}: comma-separated methods from ${CONFORMAL_METHODS.join(', ')}`,
    )
    .option(
      '--alpha <levels>',
      'conformal miscoverage levels α in (0, 1), comma-separated (target coverage 1 − α); default 0.1',
    )
    .option('--conformal-seed <n>', "conformal: seed of the randomised scores and of RAPS's tuning split (default 0)")
    .option('--class-conditional', 'conformal: one q̂ per class (Mondrian) instead of one for all')
    .option('--randomized', 'conformal: randomised APS / RAPS scores (LAC is never randomised)');
}

function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

/** Parses --alpha: numbers strictly between 0 and 1, no repeats. */
export function parseAlphas(s: string): number[] {
  const parts = splitList(s);
  if (parts.length === 0) throw new UsageError(`--alpha: expected levels in (0, 1) such as 0.1,0.05, got "${s}"`);
  const alphas = parts.map((p) => {
    const a = Number(p);
    if (!/^[0-9.eE+-]+$/.test(p) || !(a > 0 && a < 1))
      throw new UsageError(`--alpha: each level must be a number in (0, 1), got "${p}"`, {
        hint: 'e.g. --alpha 0.1 for 90% coverage',
      });
    return a;
  });
  const repeated = alphas.find((a, i) => alphas.indexOf(a) !== i);
  if (repeated !== undefined) throw new UsageError(`--alpha: level ${repeated} is given twice`);
  return alphas;
}

/** Parses --conformal: method names from lac, aps, raps, no repeats. */
export function parseConformalMethods(s: string): ConformalMethod[] {
  const methods = splitList(s.toLowerCase());
  if (methods.length === 0)
    throw new UsageError(`--conformal: expected methods from ${CONFORMAL_METHODS.join(', ')}, got "${s}"`);
  for (const m of methods) {
    if (!(CONFORMAL_METHODS as readonly string[]).includes(m))
      throw new UsageError(`--conformal: unknown method "${m}"; choose from ${CONFORMAL_METHODS.join(', ')}`);
  }
  const repeated = methods.find((m, i) => methods.indexOf(m) !== i);
  if (repeated !== undefined) throw new UsageError(`--conformal: method ${repeated} is given twice`);
  return methods as ConformalMethod[];
}

/**
 * The conformal options the flags ask for, or null when --conformal is absent (then the other
 * conformal flags are a UsageError: they would be silently ignored).
 */
export function conformalFromFlags(flags: ConformalFlags): ConformalEvalOptions | null {
  if (flags.conformal === undefined) {
    const stray = (
      [
        ['alpha', '--alpha'],
        ['conformalSeed', '--conformal-seed'],
        ['classConditional', '--class-conditional'],
        ['randomized', '--randomized'],
      ] as const
    )
      .filter(([key]) => flags[key] !== undefined && flags[key] !== false)
      .map(([, flag]) => flag);
    if (stray.length)
      throw new UsageError(
        `${stray.join(', ')} appl${stray.length > 1 ? 'y' : 'ies'} to conformal prediction; add --conformal lac,aps,raps`,
      );
    return null;
  }
  let seed = 0;
  if (flags.conformalSeed !== undefined) {
    seed = Number(flags.conformalSeed);
    if (!/^\d+$/.test(flags.conformalSeed.trim()) || !Number.isSafeInteger(seed))
      throw new UsageError(`--conformal-seed: expected a non-negative integer, got "${flags.conformalSeed}"`);
  }
  return {
    methods: parseConformalMethods(flags.conformal),
    alphas: flags.alpha === undefined ? [0.1] : parseAlphas(flags.alpha),
    classConditional: flags.classConditional ?? false,
    randomized: flags.randomized ?? false,
    seed,
  };
}
