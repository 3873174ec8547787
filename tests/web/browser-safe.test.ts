/**
 * The web page (web/) imports the toolkit's model code from src/ directly; a Node built-in anywhere in that import
 * graph would break the page (Vite replaces Node modules with empty stubs). This walks the graph from the page's
 * entry the way the bundler sees it — value imports and re-exports, not type-only ones — and lists the bare
 * packages reached: no Node built-in may be among them. Fast, so it runs in `npm test`; `npm run test:web` runs the
 * page itself.
 */
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');

/** Module specifiers a file loads at run time (type-only imports and re-exports left out). */
function runtimeSpecifiers(source: string): string[] {
  const out: string[] = [];
  // the clause between import/export and from holds no quote or semicolon (it may span lines: `{ a,\n b }`)
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) {
    if (m[5]) {
      out.push(m[5]); // side-effect import
      continue;
    }
    if (m[2]) continue; // import type / export type
    const clause = m[3]!;
    const named = /^\{([\s\S]*)\}$/.exec(clause.trim());
    if (named) {
      const parts = named[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (parts.length > 0 && parts.every((p) => p.startsWith('type '))) continue; // only types named
    }
    out.push(m[4]!);
  }
  return out;
}

/** Every bare package the files reachable from `entry` load, with the file that loads it. */
function reachablePackages(entry: string): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of runtimeSpecifiers(fs.readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const resolved = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
        if (resolved.endsWith('.ts') && fs.existsSync(resolved)) stack.push(resolved);
        else if (!/\.(css|wasm|json)(\?.*)?$/.test(spec) && !spec.includes('?'))
          throw new Error(`${path.relative(root, file)}: cannot resolve ${spec}`);
      } else if (!packages.has(spec)) packages.set(spec, path.relative(root, file));
    }
  }
  return packages;
}

describe('the web page imports no Node built-in', () => {
  it('finds type-only imports and skips them, keeps value imports and side-effect imports', () => {
    const src = [
      "import type { A } from './a.js';",
      "import { type B, type C } from './b.js';",
      "import { type D, e } from './d.js';",
      "export { f } from './f.js';",
      "export type { G } from './g.js';",
      "import '@tensorflow/tfjs-backend-cpu';",
      "import fs from 'node:fs';",
    ].join('\n');
    expect(runtimeSpecifiers(src)).toEqual(['./d.js', './f.js', '@tensorflow/tfjs-backend-cpu', 'node:fs']);
  });

  it('sees the Node built-ins of the addon loader the model code must not import', () => {
    const packages = reachablePackages(path.join(root, 'src/engine/native-blas.ts'));
    expect(packages.get('node:fs')).toBe(path.join('src', 'engine', 'native', 'addon.ts'));
  });

  it('reaches src/ from web/src/main.ts without node: or other built-in modules', () => {
    const packages = reachablePackages(path.join(root, 'web/src/main.ts'));
    expect([...packages.keys()]).toContain('@tensorflow/tfjs-core');
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const offending = [...packages].filter(([p]) => builtins.has(p) || p.startsWith('node:'));
    expect(offending.map(([p, f]) => `${p} (imported by ${f})`)).toEqual([]);
  });
});
