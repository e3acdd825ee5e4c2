#!/usr/bin/env bash
# Installs the vidmine package of this checkout into the conda env Snakemake just created.
# Snakemake (--sdm conda) runs `<env>.post-deploy.sh` inside the new env, from a copy under
# .snakemake/conda/ and with the run's working directory as cwd, so this script cannot find the
# checkout from its own path: it takes $VIDMINE_SRC, which the workflow sets from its own
# location, and falls back to the working directory (the usual `snakemake` from the checkout).
# --no-deps: the env file is the whole env (vidmine's core dependencies and that env's stage
# libraries, pinned), so installing vidmine pulls no other stage's libraries; `pip check` then
# stops the deploy, naming the package, if the env file lacks one vidmine's core needs.
# Editable, so an updated checkout needs no new env.
set -euo pipefail
src=${VIDMINE_SRC:-$PWD}
if ! grep -qs '^name = "vidmine"' "$src/pyproject.toml"; then
	echo "post-deploy: no vidmine checkout at '$src'; set VIDMINE_SRC to it" >&2
	exit 1
fi
python -m pip install --no-deps --editable "$src"
python -m pip check
