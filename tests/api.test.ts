/**
 * The public API (src/index.ts) is curated and documented: every exported name resolves to a declaration
 * with a `/** … *\/` comment directly above it, and no internal helper is exported. Source-level only
 * (regexes over the files, no TypeScript compiler), so it runs in milliseconds and needs no build.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const entry = path.join(root, 'src/index.ts');

/** Helpers the modules share among themselves; none may be a top-level export of the package. */
const INTERNAL = [
  'fuzzyCeil',
  'fuzzyRound',
  'erf',
  'erfc',
  'erfcFast',
  'normalCdf',
  'cv2',
  'squaredCoefficientOfVariation',
  'importanceLossOfGroup',
  'routerAuxLosses',
  'checkMatrix',
  'topKIndices',
  'CheckpointFs',
  'checkpointFileName',
  'compareShapes',
  'latexEscape',
  'formatNumber',
  'planTopK',
  'planExpertChoice',
  'moeLayer',
  'dense',
  'dense2d',
  'gelu',
  'layerNorm',
  'gatherRows',
  'scatterAddRows',
  'makeVariable',
  'paramSpecs',
  'initParamValues',
  'decideHead',
  'initFromCheckpoint',
  'Adam',
  'learningRate',
  'carveValidation',
  'clearDataCache',
  'findIdxFile',
  'encodeIdx',
  'writeIdx',
  'hasKernel',
  'isPlainWasm',
  'registerWasmBlasBackend',
  'loadBlasAddon',
  'activeBlasAddon',
  'chooseGemm',
  'selfCheck',
  'checkAddon',
  'defaultAddonPath',
  'chooseCoreType',
  'WASM_BLAS',
  'runRecord',
  'PACKAGE_VERSION',
  'checkScores',
  'checkSingle',
  'checkLabels',
  'checkSameLength',
  'floorTimesDecimal',
  'uniformDraws',
];

/** Where an exported name is declared: the file and the line of its `export … name` declaration. */
interface Decl {
  file: string;
  line: number;
  name: string;
  namespace?: string;
}

const sources = new Map<string, string>();
function source(file: string): string {
  let s = sources.get(file);
  if (s === undefined) {
    s = fs.readFileSync(file, 'utf8');
    sources.set(file, s);
  }
  return s;
}
const target = (from: string, spec: string) => path.resolve(path.dirname(from), spec.replace(/\.js$/, '.ts'));
const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;
/** `a, type B, c as d` → [[local, exported]]. */
const specifiers = (list: string) =>
  list
    .split(',')
    .map((s) => s.trim().replace(/^type\s+/, ''))
    .filter(Boolean)
    .map((s) => {
      const [local, , as] = s.split(/\s+/);
      return [local!, as ?? local!] as const;
    });

/** Every export of a module, followed through re-exports to the declaring file. */
function moduleExports(file: string): Map<string, Decl> {
  const text = source(file);
  const out = new Map<string, Decl>();
  // export * as ns from '…' (a namespace: its own doc comment is above this statement)
  for (const m of text.matchAll(/^export \* as (\w+) from '([^']+)';/gm)) {
    out.set(m[1]!, { file, line: lineOf(text, m.index!), name: m[1]!, namespace: target(file, m[2]!) });
  }
  for (const m of text.matchAll(/^export \* from '([^']+)';/gm)) {
    for (const [k, v] of moduleExports(target(file, m[1]!))) out.set(k, v);
  }
  // export { a, type B as C } from '…'  /  export type { … } from '…'
  for (const m of text.matchAll(/^export (?:type )?\{([^}]*)\} from '([^']+)';/gm)) {
    const from = moduleExports(target(file, m[2]!));
    for (const [local, exported] of specifiers(m[1]!)) {
      const d = from.get(local);
      if (!d) throw new Error(`${path.relative(root, file)}: '${local}' is not exported by ${m[2]}`);
      out.set(exported, d);
    }
  }
  // export { a, b };  (names imported from another module, or declared here without `export`)
  for (const m of text.matchAll(/^export (?:type )?\{([^}]*)\};/gm)) {
    for (const [local, exported] of specifiers(m[1]!)) {
      const imp = new RegExp(`^import (?:type )?\\{[^}]*\\b${local}\\b[^}]*\\} from '([^']+)';`, 'm').exec(text);
      const d = imp ? moduleExports(target(file, imp[1]!)).get(local) : localDecl(file, local, false);
      if (!d) throw new Error(`${path.relative(root, file)}: cannot find '${local}'`);
      out.set(exported, d);
    }
  }
  for (const m of text.matchAll(
    /^export (?:declare )?(?:abstract )?(?:async )?(?:function\*?|class|const|let|interface|type|enum) (\w+)/gm,
  )) {
    out.set(m[1]!, { file, line: lineOf(text, m.index!), name: m[1]! });
  }
  return out;
}

function localDecl(file: string, name: string, exported: boolean): Decl | undefined {
  const text = source(file);
  const re = new RegExp(
    `^${exported ? 'export ' : ''}(?:declare )?(?:abstract )?(?:async )?(?:function\\*?|class|const|let|interface|type|enum) ${name}\\b`,
    'm',
  );
  const m = re.exec(text);
  return m ? { file, line: lineOf(text, m.index), name } : undefined;
}

/** The doc comment ending on the line directly above `line` (1-based), or null. */
function docAbove(file: string, line: number): string | null {
  const lines = source(file).split('\n');
  const end = line - 2;
  // a trailing shape note after the comment is fine: `/** … */  // (N, K)`
  if (
    end < 0 ||
    !lines[end]!.replace(/\*\/\s*\/\/.*$/, '*/')
      .trim()
      .endsWith('*/')
  )
    return null;
  let start = end;
  while (start >= 0 && !lines[start]!.includes('/*')) start--;
  if (start < 0 || !lines[start]!.trim().startsWith('/**')) return null;
  const doc = lines
    .slice(start, end + 1)
    .join('\n')
    .replace(/\*\/\s*\/\/.*$/, '*/')
    .replace(/^\s*\/\*\*|\*\/\s*$|^\s*\*\s?/gm, '')
    .trim();
  return doc.length > 0 ? doc : null;
}

const where = (d: Decl) => `${path.relative(root, d.file)}:${d.line}`;
const api = moduleExports(entry);
const namespaces = [...api.values()].filter((d) => d.namespace);

describe('public API (src/index.ts)', () => {
  it('lists every export by name (no `export *` of a whole module)', () => {
    expect(source(entry)).not.toMatch(/^export \* from/m);
    expect(api.size).toBeGreaterThan(100);
    for (const name of [
      'topExpertsPerItem',
      'metrics',
      'VisionMoE',
      'ModelSchema',
      'initEngine',
      'ece',
      'evaluate',
      'VmoeError',
    ]) {
      expect(api.has(name), name).toBe(true);
    }
  });

  it('exports no internal helper', () => {
    expect([...api.keys()].filter((n) => INTERNAL.includes(n))).toEqual([]);
  });

  it('every export has a doc comment directly above its declaration', () => {
    const missing = [...api.entries()]
      .filter(([, d]) => docAbove(d.file, d.line) === null)
      .map(([n, d]) => `${n} (${where(d)})`);
    expect(missing).toEqual([]);
  });

  it.each(namespaces.map((d) => [d.name, d] as const))(
    'namespace %s: every member documented, internals tagged @internal',
    (_, ns) => {
      const members = moduleExports(ns.namespace!);
      const missing: string[] = [],
        untagged: string[] = [];
      for (const [n, d] of members) {
        const doc = docAbove(d.file, d.line);
        if (doc === null) missing.push(`${n} (${where(d)})`);
        else if (INTERNAL.includes(n) && !/@internal\b/.test(doc)) untagged.push(`${n} (${where(d)})`);
      }
      expect(missing).toEqual([]);
      expect(untagged).toEqual([]);
    },
  );

  it('the doc check itself: finds a doc comment, misses a `//` comment and a gap', () => {
    const file = path.join(root, 'tests/.api-doc-probe.ts');
    sources.set(
      file,
      '/** Documented. */\nexport const a = 1;\n// not a doc comment\nexport const b = 2;\n/** Gap. */\n\nexport const c = 3;\n',
    );
    const decls = moduleExports(file);
    expect([...decls.keys()]).toEqual(['a', 'b', 'c']);
    expect(['a', 'b', 'c'].map((n) => docAbove(file, decls.get(n)!.line) !== null)).toEqual([true, false, false]);
  });
});
