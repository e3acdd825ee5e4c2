#!/usr/bin/env bash
# Set up vidmine on a fresh Debian 12 machine: system packages (ffmpeg, Python venv support)
# and the Python environment in .venv at the checkout root (vidmine, Snakemake, the SLURM
# executor plugin, torch/torchvision from the standard PyPI wheels, test tools).
# Idempotent: a second run only checks. Run as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# opencv-doc ships OpenCV's sample media (a campus camera, an animated trailer, photographs):
# the real-footage tests (tests/real_footage) read them from there.
packages=(ffmpeg python3 python3-venv python3-pip git ca-certificates opencv-doc)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: $python is older than 3.11; set PYTHON=python3.11" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing vidmine and its dependencies into .venv (torch wheels are large)"
# The versions the per-rule envs pin (workflow/envs/*.yaml) are the ones tested together: .venv
# takes them as constraints, so the tests run what the cluster envs hold.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
sed -n -E 's/^ +- ([A-Za-z0-9_.-]+==[^ #]+).*/\1/p' workflow/envs/*.yaml | sort -u >"$constraints"
.venv/bin/python -m pip install -q -e ".[all]" -c "$constraints"
.venv/bin/vidmine check-config config/config.yaml
echo "setup: done. Demo: .venv/bin/snakemake --profile profiles/local all"
