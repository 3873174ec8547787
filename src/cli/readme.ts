/** `vmoe readme`: writes a run's results (or a Markdown table) into a result section (export/readme.ts) and says so. */
import type { Command } from 'commander';
import {
  RESULTS_FILE,
  checkReadmeTarget,
  sectionFromFile,
  sectionFromRun,
  updateReadmeSection,
} from '../export/readme.js';
import { UsageError } from '../util/errors.js';

/**
 * `vmoe readme --section quickstart --from runs/quickstart`: copies a run's results.md (+ provenance) into a result
 * section of docs/results.md (`--readme FILE` for another Markdown file, e.g. README.md as before).
 */
export function registerReadmeCommand(program: Command): void {
  program
    .command('readme')
    .description(`write a run's results table into the section <!-- vmoe:NAME --> of ${RESULTS_FILE}`)
    .requiredOption('--section <name>', 'section name')
    .option('--from <dir>', 'run folder holding results.md and results.json')
    .option(
      '--file <md>',
      'a Markdown table the toolkit wrote (vmoe report, vmoe fewshot, npm run bench …) instead of --from',
    )
    .option('--readme <file>', 'Markdown file holding the section', RESULTS_FILE)
    .option('--command <text>', 'the command that regenerates these numbers')
    .action((flags: { section: string; from?: string; file?: string; readme: string; command?: string }) => {
      checkReadmeTarget(flags.readme, flags.section);
      if (!flags.file && !flags.from) throw new UsageError('give --from <run folder> or --file <markdown>');
      const body = flags.file ? sectionFromFile(flags.file, flags.command) : sectionFromRun(flags.from!, flags.command);
      updateReadmeSection(flags.readme, flags.section, body);
      process.stdout.write(`updated section ${flags.section} of ${flags.readme}\n`);
    });
}
