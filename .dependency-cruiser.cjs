/**
 * Import rules for src/ (run by `npm run check:layers` and by tests/architecture.test.ts).
 *
 * The folders form one stack, lowest first; a module may import from its own folder or from a folder
 * below it, never from one above, and no import cycle is allowed anywhere (docs/architecture.md).
 */
const LAYERS = [
  'util',
  'data',
  'engine',
  'metrics',
  'robustness',
  'fewshot',
  'vmoe',
  'ensembles',
  'config',
  'checkpoint',
  'train',
  'eval',
  'export',
  'experiments',
  'queue',
  'cli',
];

const upward = LAYERS.slice(0, -1).map((name, i) => ({
  name: `no-upward-from-${name}`,
  comment: `src/${name} sits below ${LAYERS.slice(i + 1).join(', ')}: it may not import them`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'no import cycles, inside a folder or between folders',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      comment: 'every folder of src/ has its place in the layer list of .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: `^src/(${LAYERS.join('|')})/` },
      to: {},
    },
    {
      name: 'no-index-from-inside',
      comment: 'src/index.ts is the public API: nothing inside src/ imports it',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    // type-only imports count too: a type from a higher layer is still an upward dependency
    tsPreCompilationDeps: true,
    // './x.js' in an import names './x.ts' (NodeNext resolution)
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
