#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { PACKAGE_VERSION } from '../engine/record.js';
import { reportError } from './common.js';
import { EXIT_BAD_INPUT } from '../util/errors.js';
import { isWorker, superviseCommand } from '../util/supervise.js';
import { registerTrainCommands } from './train.js';
import { registerEvalCommand } from './eval.js';
import { registerInfoCommand } from './info.js';
import { registerQuickstartCommand } from './quickstart.js';
import { registerProbeCommand } from './probe.js';
import { registerMetricsCommand } from './metrics.js';
import { registerDatasetsCommand } from './datasets.js';
import { registerReadmeCommand } from './readme.js';
import { registerConfigCommand } from './config.js';
import { registerFewshotCommand } from './fewshot.js';
import { registerReportCommand } from './report.js';
import { registerExperimentCommand } from './experiment.js';
import { registerSweepCommand } from './sweep.js';
import { registerRoutingCommand } from './routing.js';
import { registerCorruptCommand } from './corrupt.js';
import { registerRobustnessCommand } from './robustness.js';
import { registerImportCommand } from './import.js';
import { registerPredictCommand } from './predict.js';
import { registerExportCommand } from './export.js';
import { registerQueueCommands } from './queue.js';

const program = new Command();
program
  .name('vmoe')
  .description('Sparse Mixture-of-Experts vision models (V-MoE, E³) and the metrics to trust their predictions')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .exitOverride(); // commander's own errors (unknown option, missing argument) are bad input too: exit 2, not 1

registerQuickstartCommand(program);
registerTrainCommands(program);
registerEvalCommand(program);
registerInfoCommand(program);
registerDatasetsCommand(program);
registerMetricsCommand(program);
registerProbeCommand(program);
registerFewshotCommand(program);
registerReportCommand(program);
registerExperimentCommand(program);
registerImportCommand(program);
registerPredictCommand(program);
registerExportCommand(program);
registerSweepCommand(program);
registerRoutingCommand(program);
registerCorruptCommand(program);
registerRobustnessCommand(program);
registerQueueCommands(program);
registerReadmeCommand(program);
registerConfigCommand(program);

// Long synchronous commands run in a supervised worker so that SIGINT / SIGTERM stop them cleanly (util/supervise.ts).
const SUPERVISED = new Set(['eval', 'robustness', 'sweep', 'fewshot', 'corrupt']);
program.hook('preAction', async (_program, cmd) => {
  if (!SUPERVISED.has(cmd.name()) || isWorker()) return;
  process.exit(await superviseCommand({ command: `vmoe ${cmd.name()}`, out: cmd.opts().out as string | undefined }));
});

program.option('--debug', 'print the stack trace of unexpected errors (also VMOE_DEBUG=1)');

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_BAD_INPUT);
  process.exit(reportError(err, { debug: process.argv.includes('--debug') || process.env.VMOE_DEBUG === '1' }));
});
