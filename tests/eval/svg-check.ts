/**
 * A minimal XML well-formedness check for the SVG writers: balanced tags,
 * quoted attributes, escaped text, one <svg> root. Returns the elements seen.
 */
import fs from 'node:fs';

export interface SvgElement {
  name: string;
  attrs: Record<string, string>;
}

const TAG = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
const ATTR = /([\w:-]+)="([^"]*)"/g;
const ENTITY = /&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;

export function checkSvg(svg: string): SvgElement[] {
  const stack: string[] = [];
  const elements: SvgElement[] = [];
  let roots = 0;
  let i = 0;
  while (i < svg.length) {
    const ch = svg[i]!;
    if (ch === '<') {
      TAG.lastIndex = i;
      const m = TAG.exec(svg);
      if (!m) throw new Error(`malformed tag at offset ${i}: ${svg.slice(i, i + 60)}`);
      const [, close, name, attrText, selfClose] = m;
      if (close) {
        const open = stack.pop();
        if (open !== name) throw new Error(`</${name}> at offset ${i} closes <${open}>`);
      } else {
        if (stack.length === 0) roots++;
        const attrs: Record<string, string> = {};
        for (const a of attrText!.matchAll(ATTR)) {
          if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]} on <${name}> at offset ${i}`);
          checkText(a[2]!, i);
          attrs[a[1]!] = a[2]!;
        }
        elements.push({ name: name!, attrs });
        if (!selfClose) stack.push(name!);
      }
      i = TAG.lastIndex;
    } else {
      const next = svg.indexOf('<', i);
      const end = next < 0 ? svg.length : next;
      const text = svg.slice(i, end);
      if (stack.length === 0 && text.trim()) throw new Error(`text outside the root element at offset ${i}`);
      checkText(text, i);
      i = end;
    }
  }
  if (stack.length) throw new Error(`unclosed elements: ${stack.join(' > ')}`);
  if (roots !== 1 || elements[0]?.name !== 'svg')
    throw new Error(`expected one <svg> root, got ${roots} roots starting with <${elements[0]?.name}>`);
  return elements;
}

function checkText(text: string, offset: number): void {
  for (let j = text.indexOf('&'); j >= 0; j = text.indexOf('&', j + 1)) {
    ENTITY.lastIndex = j;
    if (!ENTITY.test(text)) throw new Error(`unescaped & near offset ${offset + j}`);
  }
}

export const count = (els: SvgElement[], name: string, pred: (e: SvgElement) => boolean = () => true) =>
  els.filter((e) => e.name === name && pred(e)).length;

/** Whether a file starts with the 8-byte PNG signature (figures are written as name.svg + name.png). */
export function isPng(file: string): boolean {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const b = fs.readFileSync(file);
  return b.length > sig.length && sig.every((v, i) => b[i] === v);
}
