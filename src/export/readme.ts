/**
 * Result sections are written by the toolkit: a section lives between `<!-- vmoe:NAME -->` and
 * `<!-- /vmoe:NAME -->` in a Markdown file (docs/results.md holds them all; `vmoe readme` writes there by
 * default) and is replaced whole.
 */
import fs from 'node:fs';
import { DataError } from '../util/errors.js';

export function replaceSection(text: string, name: string, body: string, source = 'README'): string {
  const open = `<!-- vmoe:${name} -->`, close = `<!-- /vmoe:${name} -->`;
  const i = text.indexOf(open), j = text.indexOf(close);
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

export function updateReadmeSection(file: string, name: string, body: string): void {
  const text = fs.readFileSync(file, 'utf8');
  const next = replaceSection(text, name, body, file);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, file);
}
