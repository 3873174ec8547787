/**
 * Vite config of the web page (docs/web.md): root web/, static output in web/dist/ with relative asset paths (so
 * the folder works from any static server or sub-path). The page imports the model code from ../src directly;
 * the tfjs wasm binaries are imported with `?url` (web/src/backend.ts), which makes Vite copy them into the build.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vite';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '..');

export default defineConfig({
  root: here,
  base: './',
  publicDir: path.join(here, 'public'),
  build: {
    outDir: path.join(here, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4000,
    rollupOptions: {
      onwarn(warning, warn) {
        // zod's sources carry /* @__PURE__ */ comments where Rollup cannot use them; harmless, and not ours.
        if (warning.code === 'INVALID_ANNOTATION') return;
        warn(warning);
      },
    },
  },
  server: {
    // node_modules may be a symlink to another checkout: allow its real folder too.
    fs: { allow: [repo, fs.realpathSync(path.join(repo, 'node_modules'))] },
  },
  logLevel: 'warn',
});
