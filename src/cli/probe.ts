/**
 * `vmoe probe`: parses flags, fits a linear probe (LSR or logistic) on user-supplied train features and scores
 * user-supplied test features (fewshot/probe.ts), prints the result (export/probe-format.ts).
 * Files: CSV with header `label,f0,…,f{D-1}` (src/fewshot/features-csv.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { formatProbeResult, type ProbeFormat } from '../export/probe-format.js';
import { runProbe } from '../fewshot/probe.js';
import type { ProbeKind } from '../fewshot/protocol.js';

function parseL2(value: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(`expected a finite number > 0 (e.g. 1024), got '${value}'`);
  }
  return v;
}

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('fit a linear probe on labelled feature CSVs (header label,f0,…,f{D-1}) and score a test set')
    .requiredOption('--train <file>', 'train features CSV')
    .requiredOption('--test <file>', 'test features CSV')
    .requiredOption('--l2 <lambda>', 'L2 regularisation λ (> 0); for logreg C = 1/λ', parseL2)
    .addOption(new Option('--probe <kind>', 'probe').choices(['lsr', 'logreg']).default('lsr'))
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'table']).default('json'))
    .action(async (opts: { train: string; test: string; l2: number; probe: ProbeKind; format: ProbeFormat }) => {
      const result = await runProbe(opts);
      process.stdout.write(formatProbeResult(result, opts.format) + '\n');
    });
}
