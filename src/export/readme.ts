/**
 * Result sections are written by the toolkit: a section lives between `<!-- vmoe:NAME -->` and
 * `<!-- /vmoe:NAME -->` in a Markdown file (docs/results.md holds them all; `vmoe readme` writes there by
 * default) and is replaced whole. A section's body is a Markdown table the toolkit wrote, or a run's
 * results.md followed by a provenance sentence built from its results.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DataError, UsageError } from '../util/errors.js';
import { eceWords, provenanceOf } from './provenance.js';

/** Where the toolkit's result sections live (the README shows a copy of one table and links here). */
export const RESULTS_FILE = 'docs/results.md';

/** `text` with the section `name` replaced by `body`; a DataError naming `source` when the markers are missing. */
export function replaceSection(text: string, name: string, body: string, source = 'README'): string {
  const open = `<!-- vmoe:${name} -->`,
    close = `<!-- /vmoe:${name} -->`;
  const i = text.indexOf(open),
    j = text.indexOf(close);
  if (i < 0 || j < i) {
    throw new DataError(`${source} has no section markers ${open} … ${close}`, {
      hint: `add the two lines ${open} and ${close} where the section belongs (or choose another --section)`,
    });
  }
  return text.slice(0, i + open.length) + '\n' + body.trimEnd() + '\n' + text.slice(j);
}

/** A Markdown file's body for a result section: a leading top-level heading ("# …") is the file's own title, not the section's. */
export function sectionBody(markdown: string): string {
  return markdown.replace(/^# [^\n]*\n+/, '').trimEnd();
}

/** Replaces the section `name` of the Markdown file `file` with `body` (written to a temporary file, then renamed). */
export function updateReadmeSection(file: string, name: string, body: string): void {
  const text = fs.readFileSync(file, 'utf8');
  const next = replaceSection(text, name, body, file);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, file);
}

/** The target must exist and hold the section's markers: say so, and where the sections live, before writing anything. */
export function checkReadmeTarget(file: string, section: string): void {
  const open = `<!-- vmoe:${section} -->`,
    close = `<!-- /vmoe:${section} -->`;
  if (!fs.existsSync(file)) {
    throw new UsageError(
      `--readme ${file}: no such file (result sections live in ${RESULTS_FILE}; run from the repository root or pass --readme FILE)`,
    );
  }
  const text = fs.readFileSync(file, 'utf8');
  if (!text.includes(open) || !text.includes(close)) {
    throw new UsageError(
      `--readme ${file}: no section ${section} (markers ${open} … ${close}); add the two marker lines where the section belongs`,
    );
  }
}

/** A section body from a Markdown table file (its own title dropped), with the command that regenerates it. */
export function sectionFromFile(file: string, command?: string): string {
  if (!fs.existsSync(file)) throw new DataError(`--file ${file}: no such file`);
  return sectionBody(fs.readFileSync(file, 'utf8')) + (command ? `\n\nRegenerate: \`${command}\`` : '');
}

/**
 * A section body from a run folder: its results.md, then one paragraph of provenance from its results.json (date,
 * cores, backend, threads, seed, version, checkpoint hash, wall time, the regenerating command, the conventions).
 */
export function sectionFromRun(dir: string, command?: string): string {
  for (const name of ['results.md', 'results.json']) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      throw new DataError(
        `--from ${dir}: ${fs.existsSync(dir) ? `no ${name} in that folder` : 'no such folder'} (looked for ${file})`,
        {
          hint: 'pass a folder written by `vmoe quickstart` or `vmoe experiment` (it holds results.md and results.json), or use --file <markdown>',
        },
      );
    }
  }
  const md = fs.readFileSync(path.join(dir, 'results.md'), 'utf8');
  const resFile = path.join(dir, 'results.json');
  let res: Record<string, any>;
  try {
    res = JSON.parse(fs.readFileSync(resFile, 'utf8')) as Record<string, any>;
  } catch (e) {
    throw new DataError(`${resFile}: not valid JSON: ${(e as Error).message}`);
  }
  const prov = [
    `Measured ${String(res.time ?? '').slice(0, 10)} on ${res.host?.cpus ?? '?'} CPU cores, backend ${res.engine?.backend ?? '?'} (${res.engine?.threads ?? '?'} thread${res.engine?.threads === 1 ? '' : 's'}${res.engine?.gemm ? `, products on ${res.engine.gemm}` : ''}), seed ${res.seed}, vmoe-ts ${res.versions?.['vmoe-ts'] ?? '?'}; checkpoint sha256 ${String(res.checkpoint?.sha256 ?? '').slice(0, 12)}.`,
    res.total_seconds ? `Wall time of the whole job: ${(res.total_seconds / 60).toFixed(1)} min.` : '',
    command ? `Regenerate: \`${command}\`.` : '',
    `${eceWords(provenanceOf(res).ece)}; NLL in nats; Brier summed over classes; FLOPs: matMul only, 2 per multiply-add.`,
  ]
    .filter(Boolean)
    .join(' ');
  return `${md.trimEnd()}\n\n${prov}`;
}
