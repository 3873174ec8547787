import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExperiment } from '../src/config/experiment.js';

const dir = path.resolve(__dirname, '../configs');
describe('shipped configs', () => {
  it.each(fs.readdirSync(dir).filter((f) => f.endsWith('.json')))(
    '%s validates and states its expected result',
    (f) => {
      const cfg = loadExperiment(path.join(dir, f));
      expect(cfg.name).toBe(f.replace(/\.json$/, ''));
      expect(Object.keys(cfg.expected).length).toBeGreaterThan(0);
    },
  );
});
