/** `vmoe fewshot`: parses flags into FewShotEvalOptions, runs the few-shot evaluation (eval/fewshot.ts), prints and writes it (export/fewshot-files.ts). */
import type { Command } from 'commander';
import { fewShotEvaluation, type FewShotEvalOptions, type FewShotResult } from '../eval/fewshot.js';
import { FEWSHOT_FORMATS, formatFewShot, writeFewShotFiles, type FewShotFormat } from '../export/fewshot-files.js';
import type { ProbeKind } from '../fewshot/index.js';
import { addEngineOptions, collect, parsePositiveInt, startEngine } from './common.js';
import { UsageError } from '../util/errors.js';
import { withOutputDir } from '../util/output-claim.js';
import { writeOutputsWhole } from '../util/output-dir.js';

interface FewshotFlags {
  checkpoint: string[];
  datasets: string;
  shots: string;
  seeds: string;
  probe: string;
  selectBy?: string;
  trainPool: string;
  testLimit?: string;
  batchSize: string;
  cacheDir: string;
  format: string;
  out?: string;
  dataDir?: string;
  backend?: string;
  threads?: string;
}

/** Flags (strings) → typed options; every malformed flag is a UsageError naming it. */
export function fewShotOptionsFromFlags(flags: FewshotFlags): FewShotEvalOptions {
  if (!['lsr', 'logreg'].includes(flags.probe))
    throw new UsageError(`--probe must be lsr or logreg, got "${flags.probe}"`);
  if (flags.selectBy !== undefined && flags.selectBy !== 'accuracy' && flags.selectBy !== 'nll')
    throw new UsageError(`--select-by must be accuracy or nll, got "${flags.selectBy}"`);
  const shots = flags.shots.split(',').map((s) => parsePositiveInt(s.trim(), '--shots'));
  const seeds = parsePositiveInt(flags.seeds, '--seeds');
  const datasets = flags.datasets
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!datasets.length) throw new UsageError('--datasets: give at least one data set');
  return {
    checkpoints: flags.checkpoint,
    datasets,
    shots,
    seeds,
    probe: flags.probe as ProbeKind,
    selectBy: flags.selectBy,
    trainPool: parsePositiveInt(flags.trainPool, '--train-pool'),
    testLimit: flags.testLimit ? parsePositiveInt(flags.testLimit, '--test-limit') : undefined,
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'),
    cacheDir: flags.cacheDir,
    dataDir: flags.dataDir,
    onDataset: (name, train, test) =>
      process.stderr.write(`[vmoe] pre-logits of ${name}: ${train} train (the few-shot pool), ${test} test\n`),
  };
}

/** Parses, evaluates, prints in `--format`, writes `--out`. */
export async function runFewshot(flags: FewshotFlags): Promise<FewShotResult> {
  if (!(FEWSHOT_FORMATS as readonly string[]).includes(flags.format))
    throw new UsageError(`--format must be json, table, csv or latex, got "${flags.format}"`);
  const opts = fewShotOptionsFromFlags(flags);
  // --out is checked and locked before any work
  return withOutputDir(flags.out, 'vmoe fewshot', async () => {
    await startEngine(flags);
    const run = fewShotEvaluation(opts);
    process.stdout.write(formatFewShot(run.result, flags.format as FewShotFormat));
    if (flags.out) writeOutputsWhole(flags.out, () => writeFewShotFiles(flags.out!, run));
    return run.result;
  });
}

export function registerFewshotCommand(program: Command): void {
  addEngineOptions(
    program
      .command('fewshot')
      .description(
        "few-shot linear probes on frozen pre-logits (E³ and repeated --checkpoint: members' pre-logits concatenated)",
      )
      .requiredOption('--checkpoint <path>', 'checkpoint or run folder (repeatable)', collect, [])
      .option('--datasets <names>', 'comma-separated data sets', 'mnist,fashion-mnist')
      .option('--shots <list>', 'examples per class', '1,5,10,25')
      .option('--seeds <n>', 'seeds of the example draw', '3')
      .option('--probe <kind>', 'lsr (closed-form least squares) or logreg (multinomial logistic regression)', 'lsr')
      .option('--select-by <metric>', 'λ selection metric: accuracy or nll (logreg)')
      .option('--train-pool <n>', 'few-shot examples are drawn from the first n training examples', '10000')
      .option('--test-limit <n>', 'evaluate on the first n test examples')
      .option('--batch-size <n>', 'extraction batch size', '256')
      .option('--cache-dir <dir>', 'pre-logit cache', '.vmoe-cache')
      .option('--data-dir <dir>', 'folder holding the data sets')
      .option('--format <fmt>', 'json, table, csv or latex', 'table')
      .option(
        '--out <dir>',
        'write fewshot.{json,csv,tex,md} and the accuracy-vs-shots figure (SVG + PNG) into this folder',
      ),
  ).action(async (flags: FewshotFlags) => {
    await runFewshot(flags);
  });
}
