#!/usr/bin/env bash
# vidmine first (see install-vidmine.sh), then detectron2 built from source at a pinned commit
# (no PyPI wheel exists). DETECTRON2_REF overrides the commit. Needs git and network access to
# the repository, and a CUDA toolkit for the GPU ops (see detectron2.yaml).
set -euo pipefail
bash "${VIDMINE_SRC:-$PWD}/workflow/envs/install-vidmine.sh"
ref=${DETECTRON2_REF:-2dde706855d87baa9760fbcd0bdb6004a3937204}
python -m pip install --no-build-isolation \
	"detectron2 @ git+https://github.com/facebookresearch/detectron2.git@$ref"
python -c 'import detectron2, torch; print("detectron2", detectron2.__version__, "torch", torch.__version__)'
