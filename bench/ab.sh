#!/bin/bash
# Interleaved A/B of two builds (issue #22): the bench's model child of git revision BASE and of the working tree,
# alternated in each round with the PyTorch peer (1 and 2 threads), so that load from other jobs hits both alike.
# Compare best-of-rounds figures from one run only.
#
#   bench/ab.sh BASE [ROUNDS=3] [OUTDIR=/tmp/vmoe-ab] > ab.jsonl     # one JSON line per measurement, with build and round
#
# Each build is compiled with tsc into OUTDIR/<build> (not node_modules/.cache: other checkouts share that).
set -euo pipefail
base=${1:?usage: bench/ab.sh BASE_REV [ROUNDS] [OUTDIR]}
rounds=${2:-3}
out=${3:-/tmp/vmoe-ab}
root=$(cd "$(dirname "$0")/.." && pwd)
peer=${VMOE_PEER_SCRIPT:-$root/../shared/bench/torch_peer.py}
python=${VMOE_PEER_PYTHON:-/usr/bin/python3}
rm -rf "$out" && mkdir -p "$out/base-src"
ln -s "$(readlink -f "$root/node_modules")" "$out/node_modules"
git -C "$root" archive "$base" src bench package.json tsconfig.json | tar -x -C "$out/base-src"
ln -s ../node_modules "$out/base-src/node_modules"
(cd "$out/base-src" && "$root/node_modules/.bin/tsc" -p bench/tsconfig.json --outDir "$out/base" >/dev/null) || true
(cd "$root" && "$root/node_modules/.bin/tsc" -p bench/tsconfig.json --outDir "$out/new" >/dev/null) || true
cp "$root/package.json" "$out/base/" && cp "$root/package.json" "$out/new/"
cd "$root"
for round in $(seq 1 "$rounds"); do
  for build in base new; do
    for name in vit-tiny vmoe-tiny e3-tiny; do
      job="{\"kind\":\"model\",\"suite\":\"models\",\"name\":\"$name\",\"batch\":64,\"threads\":1,\"warmup\":10,\"runs\":20}"
      load=$(cut -d' ' -f1 /proc/loadavg)
      node "$out/$build/bench/run.js" --child "$job" --backend auto |
        sed "s/^{/{\"build\":\"$build\",\"round\":$round,\"load\":$load,/"
    done
  done
  if [ ! -f "$peer" ]; then echo "[ab] no peer script at $peer (set VMOE_PEER_SCRIPT): peer skipped" >&2; continue; fi
  for name in vit-tiny vmoe-tiny; do
    moe=""
    [ "$name" = vmoe-tiny ] && moe="1,3"
    for th in 1 2; do
      "$python" "$peer" --image 28 --channels 1 --patch 4 --hidden 64 --depth 4 --heads 4 --mlp 256 --classes 10 \
        --experts 8 --k 2 --moe-layers "$moe" --capacity-factor 1.05 --group-images 8 --batch 64 --threads "$th" \
        --steps 20 | tail -1 | sed "s/^{/{\"build\":\"torch\",\"name\":\"$name\",\"round\":$round,/"
    done
  done
done
