#!/usr/bin/env bash
# Run benchmarks/gpu_bench.sh on a lent GPU machine that has PyTorch but not effx (no network there):
# installs effx, its four plugin packages and the carried wheels of .whl/ (cattrs and the two PyPI
# peers with their dependencies) into /tmp/site, runs the bench, and packs docs/bench/gpu-*/ and the
# log into $OUT/gpu_bench.tgz (the device tool brings back at most 8 files).
#
#   OUT=/some/dir PART_TIMEOUT_S=200 benchmarks/gpu_device.sh
#
# .whl/ (git-ignored) is filled on a machine with pip access, for the device's Python 3.12:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d .whl cattrs==26.2.1 performer-pytorch==1.1.4 \
#     reformer-pytorch==1.4.4 local-attention==1.11.2 axial-positional-embedding==0.3.12 \
#     product-key-memory==0.3.0 colt5-attention==0.11.2 hyper-connections==0.4.11 torch-einops-utils==0.2.0
# (the device image already has torch, pluggy, attrs, click, pyyaml, numpy, pandas, matplotlib,
# scikit-learn, tokenizers and einops; the bench needs neither wandb nor datasets).
set -uo pipefail
: "${OUT:?set OUT to the folder that comes back}"
SITE=/tmp/site
mkdir -p "$SITE" /tmp/pybin
PY=$(command -v python3)
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" > /tmp/pybin/python && chmod +x /tmp/pybin/python  # a symlink would lose the venv
export PATH="$SITE/bin:/tmp/pybin:$PATH" PYTHONPATH="$SITE" PYTHONUNBUFFERED=1
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" \
    . ./plugins/attention_sdpa ./plugins/positional ./plugins/attention_reformer ./plugins/attention_performer || exit 1
rm -rf build  # setuptools' scratch folder from the non-editable install
effx plugins 2>&1 | head -20
# no pipe (`| tee`): a process left behind by a part would hold it open and hang the call
bash benchmarks/gpu_bench.sh docs/bench > "$OUT/gpu_bench.log" 2>&1
tar czf "$OUT/gpu_bench.tgz" docs/bench/gpu-* 2>/dev/null
tail -n 60 "$OUT/gpu_bench.log"
ls -la "$OUT"
