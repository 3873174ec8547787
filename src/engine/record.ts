/** What every result file records: config, seed, backend, threads and versions. */
import os from 'node:os';
import { createRequire } from 'node:module';
import { engineInfo } from './index.js';

const require = createRequire(import.meta.url);
export const PACKAGE_VERSION: string = (require('../../package.json') as { version: string }).version;

export function runRecord(config: unknown & { seed?: number }): Record<string, unknown> {
  let engine: Record<string, unknown> = {};
  try {
    const e = engineInfo();
    engine = { backend: e.backend, threads: e.threads, simd: e.simd, gemm: e.gemm };
  } catch {
    engine = { backend: 'uninitialised' };
  }
  return {
    config,
    seed: config.seed,
    engine,
    versions: { 'vmoe-ts': PACKAGE_VERSION, node: process.version, tfjs: engineInfo().tfjsVersion },
    host: { cpus: os.cpus().length, platform: `${os.platform()}-${os.arch()}` },
    time: new Date().toISOString(),
  };
}
