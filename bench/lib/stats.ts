/**
 * Pure helpers of the benchmark harness: robust timing summaries, the ratios
 * against the PyTorch peer, argument parsing and the results table. No tfjs,
 * no I/O, so they are unit-tested on their own.
 */

/** Median of a non-empty list (upper median for even lengths, as torch_peer.py takes it). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Images per second from a per-step time in milliseconds. */
export function imagesPerSecond(batch: number, stepMs: number): number {
  if (!(stepMs > 0)) throw new Error(`step time must be positive, got ${stepMs} ms`);
  return (batch * 1000) / stepMs;
}

/** One line of the peer's output (torch_peer.py). */
export interface PeerResult {
  /** Which peer (torch | xla); absent for a single unnamed peer. */
  backend?: string;
  threads: number;
  train_images_per_s: number;
  infer_images_per_s: number;
  peak_rss_mb: number;
}

export interface PeerComparison {
  /** ours / peer's best thread setting, each for its own metric. */
  train_ratio: number;
  infer_ratio: number;
  peer_best_train_threads: number;
  peer_best_infer_threads: number;
  /** The winning setting of each metric as `backend@threads` (which peer, when several are compared together). */
  peer_best_train: string;
  peer_best_infer: string;
  /** ours / the peer's smallest peak RSS. */
  rss_ratio: number;
}

export function comparePeer(
  ours: { train_images_per_s: number; infer_images_per_s: number; peak_rss_mb: number },
  peers: readonly PeerResult[],
): PeerComparison {
  if (peers.length === 0) throw new Error('no peer results to compare with');
  const bestTrain = peers.reduce((a, b) => (b.train_images_per_s > a.train_images_per_s ? b : a));
  const bestInfer = peers.reduce((a, b) => (b.infer_images_per_s > a.infer_images_per_s ? b : a));
  const minRss = Math.min(...peers.map((p) => p.peak_rss_mb));
  return {
    train_ratio: ours.train_images_per_s / bestTrain.train_images_per_s,
    infer_ratio: ours.infer_images_per_s / bestInfer.infer_images_per_s,
    peer_best_train_threads: bestTrain.threads,
    peer_best_infer_threads: bestInfer.threads,
    peer_best_train: `${bestTrain.backend ?? 'peer'}@${bestTrain.threads}`,
    peer_best_infer: `${bestInfer.backend ?? 'peer'}@${bestInfer.threads}`,
    rss_ratio: ours.peak_rss_mb / minRss,
  };
}

/**
 * Best of repeated throughput measurements of the same setting (name, suite, backend, threads,
 * batch): the highest train and infer images/s (each on its own: the least disturbed run of a
 * shared machine), the largest peak RSS (memory is not noise), and how many repeats there were.
 */
export function bestOfRepeats<
  T extends {
    name?: unknown;
    suite?: unknown;
    backend?: unknown;
    threads?: unknown;
    batch?: unknown;
    train_images_per_s?: unknown;
    infer_images_per_s?: unknown;
    peak_rss_mb?: unknown;
    error?: unknown;
  },
>(records: readonly T[]): (T & { repeats: number })[] {
  const groups = new Map<string, T[]>();
  for (const r of records) {
    if (r.error) continue;
    const key = JSON.stringify([r.name, r.suite, r.backend, r.threads, r.batch]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const max = (k: 'train_images_per_s' | 'infer_images_per_s' | 'peak_rss_mb') =>
      Math.max(...g.map((r) => Number(r[k])));
    return {
      ...g[0]!,
      train_images_per_s: max('train_images_per_s'),
      infer_images_per_s: max('infer_images_per_s'),
      peak_rss_mb: max('peak_rss_mb'),
      repeats: g.length,
    };
  });
}

/**
 * The machine's peak float32 rate in GFLOP/s for `cores` cores: clock (MHz) × FLOPs per cycle per core, where a
 * core with two 256-bit FMA pipes (AVX2 + FMA; Zen 4 runs AVX-512 on the same two pipes) does 2 pipes × 8 lanes ×
 * 2 FLOPs = 32 per cycle, and one without FMA half that.
 */
export function peakGflops(mhz: number, cores: number, flopsPerCycle: number): number {
  if (!(mhz > 0) || !(cores > 0) || !(flopsPerCycle > 0)) throw new Error('peakGflops: positive inputs needed');
  return (mhz / 1000) * flopsPerCycle * cores;
}

/** FLOPs per cycle per core from /proc/cpuinfo's flags (see peakGflops). */
export function flopsPerCycleFromFlags(flags: readonly string[]): number {
  if (flags.includes('avx2') && flags.includes('fma')) return 32;
  if (flags.includes('avx')) return 16;
  return 8;
}

export interface BenchArgs {
  quick: boolean;
  peer: boolean;
  /** Thread counts for our runs (each in its own process: wasm fixes its pool once). */
  threads: number[];
  backend: string;
  batch: number;
  /** Our model runs and the peer alternate this many times; comparisons use the best of each. */
  repeat: number;
  /** Subset of suites to run; empty = all. */
  only: string[];
  /** Write results under bench/results (off with --no-save). */
  save: boolean;
  /** Internal: run one job in this process and print its JSON line. */
  child: string | null;
}

export const SUITES = ['models', 'moe-vs-dense', 'capacity', 'batch-scaling', 's32', 'layers'] as const;

/** Parses the command line; `defaultThreads` is the engine's default (VMOE_THREADS or 1). */
export function parseArgs(argv: readonly string[], defaultThreads = 1): BenchArgs {
  const args: BenchArgs = {
    quick: false,
    peer: false,
    threads: [defaultThreads],
    backend: 'auto',
    batch: 64,
    repeat: 1,
    only: [],
    save: true,
    child: null,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
    return v;
  };
  const positiveInts = (s: string, flag: string): number[] =>
    s.split(',').map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: "${p}" is not a positive integer`);
      return n;
    });
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--':
        break;
      case '--quick':
        args.quick = true;
        break;
      case '--peer':
        args.peer = true;
        break;
      case '--no-save':
        args.save = false;
        break;
      case '--threads':
        args.threads = positiveInts(value(i, a), a);
        i++;
        break;
      case '--batch':
        args.batch = positiveInts(value(i, a), a)[0]!;
        i++;
        break;
      case '--repeat':
        args.repeat = positiveInts(value(i, a), a)[0]!;
        i++;
        break;
      case '--backend':
        args.backend = value(i, a);
        i++;
        break;
      case '--only': {
        args.only = value(i, a).split(',');
        const bad = args.only.filter((s) => !(SUITES as readonly string[]).includes(s));
        if (bad.length) throw new Error(`--only: unknown suite ${bad.join(', ')}; choose from ${SUITES.join(', ')}`);
        i++;
        break;
      }
      case '--child':
        args.child = value(i, a);
        i++;
        break;
      default:
        throw new Error(
          `unknown option ${a} (options: --quick --peer --repeat N --threads N[,M] --batch N --backend NAME --only SUITES --no-save)`,
        );
    }
  }
  return args;
}

/** A Markdown table of records: one row each, the given columns, numbers rounded to 3 significant digits. */
export function markdownTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const fmt = (v: unknown): string => {
    if (v === undefined || v === null) return '';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
    return String(v);
  };
  const head = `| ${columns.join(' | ')} |`;
  const rule = `|${columns.map(() => '---').join('|')}|`;
  return [head, rule, ...rows.map((r) => `| ${columns.map((c) => fmt(r[c])).join(' | ')} |`)].join('\n');
}
