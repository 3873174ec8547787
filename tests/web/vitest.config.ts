// `npm run test:web` (after `npm run web:build`): the page in headless Chromium. Kept out of `npm test`, which
// neither builds the page nor needs a browser.
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: path.resolve(__dirname, '../..'),
  test: {
    include: ['tests/web/**/*.web.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
