/** sweepCheckpoint: the typed report behind `vmoe sweep` (sweep.json) — one row and one per-layer entry per setting, snake_case keys. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { sweepCheckpoint } from '../../src/eval/sweep.js';
import { formatSweep } from '../../src/export/sweep-files.js';
import { tinyRun } from '../cli/tiny-run.js';

let run = '';
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  run = await tinyRun();
});

/** Every object key below `v`, as dotted paths. */
function keys(v: unknown, at = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => keys(x, at));
  if (v === null || typeof v !== 'object') return [];
  return Object.entries(v).flatMap(([k, x]) => [`${at}${k}`, ...keys(x, `${at}${k}.`)]);
}

describe('sweepCheckpoint', () => {
  it('returns rows and per-layer statistics per setting, with snake_case keys outside the saved config and the metric conventions', () => {
    const seen: number[] = [];
    const r = sweepCheckpoint({
      checkpoint: run,
      data: { dataset: 'mnist', split: 'test', limit: 16 },
      batchSize: 8,
      bins: 15,
      capacityFactors: [0.5, 2],
      batchPriority: 'both',
      onRow: (_row, i, total) => seen.push(i, total),
    });
    expect(r.rows).toHaveLength(4);
    expect(seen).toEqual([0, 4, 1, 4, 2, 4, 3, 4]);
    expect(r.per_layer).toHaveLength(4);
    expect(Object.keys(r.per_layer[0]![0]!)).toEqual(['block', 'processed_fraction', 'expert_load']);
    expect(r.per_layer.map((l) => l[0]!.processed_fraction)).toEqual(r.rows.map((x) => x.processed_fraction));
    // the config is the experiment schema's; the metric conventions are the harness's (shared with results.json)
    const { config: _config, conventions: _conventions, ...rest } = r;
    expect(keys(rest).filter((k) => /[a-z][A-Z]/.test(k.split('.').at(-1)!))).toEqual([]);
    expect(JSON.parse(formatSweep(r, 'json')).files).toEqual([]);
  });
});
