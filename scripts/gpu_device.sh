#!/usr/bin/env bash
# Run scripts/gpu_bench.sh on a lent GPU machine that has PyTorch but not effx (no network there):
# installs effx, its four plugin packages and the carried wheels of .whl/ (cattrs and the two PyPI
# peers with their dependencies) into /tmp/site, runs the bench, and packs docs/bench/gpu-*/ and the
# log into $OUT/gpu_bench.tgz (the device tool brings back at most 8 files).
#
#   OUT=/some/dir PART_TIMEOUT_S=200 scripts/gpu_device.sh
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
bash scripts/gpu_bench.sh docs/bench > "$OUT/gpu_bench.log" 2>&1
tar czf "$OUT/gpu_bench.tgz" docs/bench/gpu-* 2>/dev/null
tail -n 60 "$OUT/gpu_bench.log"
ls -la "$OUT"
