/** `vmoe robustness`: parses flags into RobustnessOptions, runs the shift evaluation (eval/robustness.ts), prints and writes it (export/robustness-files.ts). */
import type { Command } from 'commander';
import type { Split } from '../data/index.js';
import {
  robustnessReport,
  selectCorruptions,
  type RobustnessOptions,
  type RobustnessReport,
} from '../eval/robustness.js';
import {
  ROBUSTNESS_FORMATS,
  formatRobustness,
  writeRobustnessFiles,
  type RobustnessFormat,
} from '../export/robustness-files.js';
import { SUITES, type Suite } from '../robustness/index.js';
import { addEngineOptions, collect, parsePositiveInt, startEngine } from './common.js';
import { UsageError } from '../util/errors.js';
import { writeOutputsWhole } from '../util/output-dir.js';
import { withOutputDir } from '../util/output-claim.js';
import { robustnessOnQueue } from '../queue/evaluations.js';
import { QUEUE_OPTION, RUN_ROOT_OPTION, gridStatusPrinter } from './queue.js';

interface RobustnessFlags {
  checkpoint: string[];
  label: string[];
  dataset?: string;
  split: string;
  dataDir?: string;
  suite: string;
  corruptions: string;
  severities: string;
  limit?: string;
  batchSize: string;
  seed: string;
  bins: string;
  format: string;
  out?: string;
  backend?: string;
  threads?: string;
  queue?: string;
  runRoot?: string;
}

function parseSeverities(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new UsageError(`--severities: "${part}" is not a severity or range (e.g. 1-5 or 1,3,5)`);
    const a = Number(m[1]),
      b = m[2] !== undefined ? Number(m[2]) : a;
    for (let v = a; v <= b; v++) {
      if (v < 0 || v > 5) throw new UsageError(`--severities: ${v} is outside 0…5`);
      out.add(v);
    }
  }
  return [...out].sort((x, y) => x - y);
}

/** Flags (strings) → typed options; every malformed flag is a UsageError naming it. */
export function robustnessOptionsFromFlags(flags: RobustnessFlags): RobustnessOptions {
  if (!(SUITES as readonly string[]).includes(flags.suite))
    throw new UsageError(`--suite must be ${SUITES.join(' or ')}, got "${flags.suite}"`);
  const suite = flags.suite as Suite;
  if (!flags.checkpoint.length)
    throw new UsageError('--checkpoint: give at least one model (join checkpoints with + for a deep ensemble)');
  let corruptions = selectCorruptions(
    suite,
    flags.corruptions === 'all'
      ? 'all'
      : flags.corruptions
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
  );
  if (suite === 'c') {
    const severities = parseSeverities(flags.severities);
    corruptions = corruptions.map((c) => ({ ...c, severities }));
  }
  const seed = Number(flags.seed);
  if (!Number.isInteger(seed) || seed < 0)
    throw new UsageError(`--seed: expected a non-negative integer, got "${flags.seed}"`);
  return {
    checkpoints: flags.checkpoint,
    labels: flags.label,
    data: {
      dataset: flags.dataset,
      split: flags.split as Split,
      dataDir: flags.dataDir,
      limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    },
    suite,
    corruptions,
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'),
    seed,
    bins: parsePositiveInt(flags.bins, '--bins'),
    onSet: (name, s, i, total) => process.stderr.write(`[vmoe] ${i + 1}/${total} ${name} severity ${s}\n`),
  };
}

/** Parses, evaluates, prints in `--format`, writes `--out`. */
export async function runRobustness(flags: RobustnessFlags): Promise<RobustnessReport> {
  if (!(ROBUSTNESS_FORMATS as readonly string[]).includes(flags.format))
    throw new UsageError(`--format must be json, table, csv, latex or markdown, got "${flags.format}"`);
  const opts = robustnessOptionsFromFlags(flags);
  // --out is checked and locked before any work
  return withOutputDir(flags.out, 'vmoe robustness', async () => {
    if (!flags.queue) await startEngine(flags);
    const report = flags.queue
      ? await robustnessOnQueue(opts, {
          url: flags.queue,
          runRoot: flags.runRoot ?? '.',
          onStatus: gridStatusPrinter(),
        })
      : robustnessReport(opts);
    process.stdout.write(formatRobustness(report, flags.format as RobustnessFormat));
    if (flags.out) writeOutputsWhole(flags.out, () => writeRobustnessFiles(flags.out!, report));
    return report;
  });
}

export function registerRobustnessCommand(program: Command): void {
  addEngineOptions(
    program
      .command('robustness')
      .description(
        'accuracy, NLL and ECE under procedural corruptions (ImageNet-C family or MNIST-C), summaries cA / cNLL / cECE',
      )
      .requiredOption(
        '--checkpoint <path>',
        'a model to evaluate (repeat for several models; join checkpoints with + for a deep ensemble)',
        collect,
        [],
      )
      .option('--label <name>', 'label of the matching --checkpoint (repeatable)', collect, [])
      .option('--dataset <name>', 'data set (default: the one it was trained on)')
      .option('--split <split>', 'split', 'test')
      .option('--data-dir <dir>', 'folder holding the data set')
      .option('--suite <name>', 'c (15 + 4 held-out corruptions × 5 severities) or mnist-c', 'c')
      .option('--corruptions <list>', 'comma-separated corruption names, or all', 'all')
      .option('--severities <list>', 'severities for suite c, e.g. 1-5 or 1,3,5', '1-5')
      .option('--limit <n>', 'use the first n test images')
      .option('--batch-size <n>', 'batch size', '256')
      .option('--seed <n>', 'corruption seed', '0')
      .option('--bins <n>', 'ECE bins', '15')
      .option('--format <fmt>', 'stdout format: table, json, csv, latex or markdown', 'table')
      .option('--out <dir>', 'write robustness.{json,csv}, summary.{csv,tex} and metric-vs-severity box plots')
      .option(...QUEUE_OPTION)
      .option(...RUN_ROOT_OPTION),
  ).action(async (flags: RobustnessFlags) => {
    await runRobustness(flags);
  });
}
