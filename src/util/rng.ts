/**
 * Seeded pseudo-random numbers whose whole state is four 32-bit words, so a
 * checkpoint can save it and a resumed run draws exactly the same numbers.
 * Generator: xoshiro128** (Blackman & Vigna), seeded through splitmix32.
 */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Seeded pseudo-random generator (xoshiro128**) whose `getState()` can be saved in a checkpoint and restored, so a
 * resumed run draws the same numbers.
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | RngState) {
    this.s = new Uint32Array(4);
    if (Array.isArray(seed)) {
      this.s.set(seed);
    } else {
      const sm = splitmix32(seed);
      for (let i = 0; i < 4; i++) this.s[i] = sm();
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller; one value per call keeps the state simple to save). */
  normal(): number {
    let u = this.uniform();
    while (u <= 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** An independent generator derived from this one (advances this one by 4 draws). */
  fork(): Rng {
    return new Rng([this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32()]);
  }

  /** A 31-bit seed, e.g. for standardNormals. */
  seed(): number {
    return this.nextUint32() >>> 1;
  }

  /**
   * n standard normal float32 values (times `scale`) by the ziggurat (see standardNormals). The
   * generator's step is inlined on int32 locals — a method call per draw cost more than the
   * ziggurat itself — and written back to the state for the rare wedge/tail cases.
   */
  normals(n: number, scale = 1): Float32Array {
    const { k, w } = ZIG;
    const out = new Float32Array(n);
    const st = this.s;
    let s0 = st[0]! | 0,
      s1 = st[1]! | 0,
      s2 = st[2]! | 0,
      s3 = st[3]! | 0;
    for (let i = 0; i < n; i++) {
      const m = Math.imul(s1, 5);
      const j = Math.imul((m << 7) | (m >>> 25), 9); // nextUint32's output, as a signed 32-bit draw
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const layer = j & 127;
      if (Math.abs(j) < k[layer]!) {
        out[i] = scale * (j * w[layer]!);
        continue;
      }
      st[0] = s0;
      st[1] = s1;
      st[2] = s2;
      st[3] = s3;
      out[i] = scale * zigguratSlow(this, j);
      s0 = st[0]! | 0;
      s1 = st[1]! | 0;
      s2 = st[2]! | 0;
      s3 = st[3]! | 0;
    }
    st[0] = s0;
    st[1] = s1;
    st[2] = s2;
    st[3] = s3;
    return out;
  }

  /** The generator's state (four uint32 words), to save in a checkpoint. */
  getState(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  /** Restore a state saved by `getState`: the generator then draws the same numbers as after that call. */
  setState(state: RngState): void {
    this.s.set(state);
  }
}

/**
 * Tables of the 128-layer ziggurat for the standard normal (Marsaglia & Tsang, "The
 * Ziggurat Method for Generating Random Variables", JSS 2000): layer i covers x up to
 * w[i]·2³¹ and accepts a draw at once when |j| < k[i]; f[i] = e^{−x_i²/2}.
 */
const ZIG = (() => {
  const R = 3.442619855899,
    V = 9.91256303526217e-3,
    M31 = 2147483648;
  const k = new Float64Array(128),
    w = new Float64Array(128),
    f = new Float64Array(128);
  let d = R,
    t = R;
  const q = V / Math.exp(-0.5 * d * d);
  k[0] = (d / q) * M31;
  k[1] = 0;
  w[0] = q / M31;
  w[127] = d / M31;
  f[0] = 1;
  f[127] = Math.exp(-0.5 * d * d);
  for (let i = 126; i >= 1; i--) {
    d = Math.sqrt(-2 * Math.log(V / d + Math.exp(-0.5 * d * d)));
    k[i + 1] = (d / t) * M31;
    t = d;
    f[i] = Math.exp(-0.5 * d * d);
    w[i] = d / M31;
  }
  return { k, w, f, R };
})();

/**
 * n standard normal float32 values (times `scale`) from seed: the ziggurat on xoshiro128** output (one 32-bit
 * draw, a table lookup and a compare for ~99% of values; the wedges and the tail fall back to
 * exact rejection). The router's noise, drawn on the host so every backend sees the same
 * values (tfjs's randomNormal took 1–2 ms for a 3200×8 batch; this ≈ 0.1 ms; `native`, the
 * same algorithm in C++, ≈ 0.03 ms).
 */
export function standardNormals(n: number, seed: number, scale = 1, native: NativeNormals | null = null): Float32Array {
  if (!native) return new Rng(seed).normals(n, scale);
  const out = new Float32Array(n);
  native.normals(Uint32Array.from(new Rng(seed).getState()), ZIG.k, ZIG.w, ZIG.f, ZIG.R, scale, out);
  return out;
}

/** A native Rng.normals from a state (the wasm-blas addon's normals): the same values, bit for bit (tested). */
export interface NativeNormals {
  normals(
    state: Uint32Array,
    k: Float64Array,
    w: Float64Array,
    f: Float64Array,
    R: number,
    scale: number,
    out: Float32Array,
  ): void;
}

/** The ziggurat's rare cases for a first draw j that missed its layer's box: the tail and the wedges. */
function zigguratSlow(rng: Rng, j: number): number {
  const { k, w, f, R } = ZIG;
  for (;;) {
    const layer = j & 127;
    const x = j * w[layer]!;
    if (Math.abs(j) < k[layer]!) return x;
    if (layer === 0) {
      // the tail beyond R: Marsaglia's exponential rejection
      let tx: number, ty: number;
      do {
        tx = -Math.log(1 - rng.uniform()) / R;
        ty = -Math.log(1 - rng.uniform());
      } while (ty + ty < tx * tx);
      return j > 0 ? R + tx : -R - tx;
    }
    // a wedge: accept under the density, else draw again
    if (f[layer]! + rng.uniform() * (f[layer - 1]! - f[layer]!) < Math.exp(-0.5 * x * x)) return x;
    j = rng.nextUint32() | 0;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
