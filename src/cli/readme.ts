import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { eceWords, provenanceOf } from '../export/provenance.js';
import { sectionBody, updateReadmeSection } from '../export/readme.js';
import { DataError, UsageError } from '../util/errors.js';

/** Where the toolkit's result sections live (the README shows a copy of one table and links here). */
export const RESULTS_FILE = 'docs/results.md';

/** The target must exist and hold the section's markers: say so, and where the sections live, before writing anything. */
function checkTarget(file: string, section: string): void {
  const open = `<!-- vmoe:${section} -->`, close = `<!-- /vmoe:${section} -->`;
  if (!fs.existsSync(file)) {
    throw new UsageError(`--readme ${file}: no such file (result sections live in ${RESULTS_FILE}; run from the repository root or pass --readme FILE)`);
  }
  const text = fs.readFileSync(file, 'utf8');
  if (!text.includes(open) || !text.includes(close)) {
    throw new UsageError(`--readme ${file}: no section ${section} (markers ${open} … ${close}); add the two marker lines where the section belongs`);
  }
}

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
    .option('--file <md>', 'a Markdown table the toolkit wrote (vmoe report, vmoe fewshot, npm run bench …) instead of --from')
    .option('--readme <file>', 'Markdown file holding the section', RESULTS_FILE)
    .option('--command <text>', 'the command that regenerates these numbers')
    .action((flags: { section: string; from?: string; file?: string; readme: string; command?: string }) => {
      checkTarget(flags.readme, flags.section);
      if (flags.file) {
        if (!fs.existsSync(flags.file)) throw new DataError(`--file ${flags.file}: no such file`);
        const body = sectionBody(fs.readFileSync(flags.file, 'utf8')) + (flags.command ? `\n\nRegenerate: \`${flags.command}\`` : '');
        updateReadmeSection(flags.readme, flags.section, body);
        process.stdout.write(`updated section ${flags.section} of ${flags.readme}\n`);
        return;
      }
      if (!flags.from) throw new UsageError('give --from <run folder> or --file <markdown>');
      for (const name of ['results.md', 'results.json']) {
        const file = path.join(flags.from, name);
        if (!fs.existsSync(file)) {
          throw new DataError(`--from ${flags.from}: ${fs.existsSync(flags.from) ? `no ${name} in that folder` : 'no such folder'} (looked for ${file})`, {
            hint: 'pass a folder written by `vmoe quickstart` or `vmoe experiment` (it holds results.md and results.json), or use --file <markdown>',
          });
        }
      }
      const md = fs.readFileSync(path.join(flags.from, 'results.md'), 'utf8');
      const resFile = path.join(flags.from, 'results.json');
      let res: Record<string, any>;
      try {
        res = JSON.parse(fs.readFileSync(resFile, 'utf8')) as Record<string, any>;
      } catch (e) {
        throw new DataError(`${resFile}: not valid JSON: ${(e as Error).message}`);
      }
      const prov = [
        `Measured ${String(res.time ?? '').slice(0, 10)} on ${res.host?.cpus ?? '?'} CPU cores, backend ${res.engine?.backend ?? '?'} (${res.engine?.threads ?? '?'} thread${res.engine?.threads === 1 ? '' : 's'}${res.engine?.gemm ? `, products on ${res.engine.gemm}` : ''}), seed ${res.seed}, vmoe-ts ${res.versions?.['vmoe-ts'] ?? '?'}; checkpoint sha256 ${String(res.checkpoint?.sha256 ?? '').slice(0, 12)}.`,
        res.total_seconds ? `Wall time of the whole job: ${(res.total_seconds / 60).toFixed(1)} min.` : '',
        flags.command ? `Regenerate: \`${flags.command}\`.` : '',
        `${eceWords(provenanceOf(res).ece)}; NLL in nats; Brier summed over classes; FLOPs: matMul only, 2 per multiply-add.`,
      ].filter(Boolean).join(' ');
      updateReadmeSection(flags.readme, flags.section, `${md.trimEnd()}\n\n${prov}`);
      process.stdout.write(`updated section ${flags.section} of ${flags.readme}\n`);
    });
}
