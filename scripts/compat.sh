#!/usr/bin/env bash
# Check the declared floors: run the fast test lane (pytest -m "not slow") in throwaway virtual
# environments under /tmp, never in the running one:
#   * on each pyenv Python in PYTHONS (default 3.10 and 3.12) with the newest torch pip picks there;
#   * on PYTHON_OLD (default 3.11) with the oldest torch that installs here on CPU: the versions in
#     TORCH_TRY are tried in order and the first that installs and imports is used.
# Every lane installs effx and the four in-repo plugins from this checkout (non-editable) plus the
# test extra; a summary line per lane goes to $OUT/compat.txt. It downloads packages (torch ~200 MB
# from the CPU index, or ~2 GB with the CUDA libraries from PyPI where no CPU build is offered).
#
#   nice -n 19 bash scripts/compat.sh                     # all lanes
#   PYTHONS="3.12" TORCH_TRY="" bash scripts/compat.sh    # one interpreter, no old-torch lane
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/effx-compat}
PYTHONS=${PYTHONS:-"3.10 3.12"}
PYTHON_OLD=${PYTHON_OLD:-3.11}
TORCH_TRY=${TORCH_TRY:-"2.2.2 2.3.1 2.4.1 2.5.1 2.6.0"}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
PYTEST_ARGS=${PYTEST_ARGS:-"-q -m 'not slow' -p no:cacheprovider"}
mkdir -p "$OUT"
: > "$OUT/compat.txt"

interpreter() {  # pyenv's newest patch release of a minor version, e.g. 3.10 -> .../3.10.13/bin/python
  local v
  v=$(pyenv versions --bare | grep -E "^$1\.[0-9]+$" | sort -V | tail -1)
  [[ -n "$v" ]] && echo "$(pyenv root)/versions/$v/bin/python"
}

make_env() {  # make_env NAME PYTHON -> prints the venv's python
  local dir="$OUT/venv-$1"
  rm -rf "$dir"
  "$2" -m venv "$dir" >&2 && "$dir/bin/python" -m pip install -q --upgrade pip >&2 && echo "$dir/bin/python"
}

install_torch() {  # install_torch PY VERSION|"" [PIP ARGS...] (empty version: newest allowed)
  local py=$1 spec="torch${2:+==$2}"
  shift 2
  "$py" -m pip install -q "$@" --index-url "$TORCH_INDEX" "$spec" 2>/dev/null ||
    "$py" -m pip install -q "$@" "$spec"
}

install_effx() {
  (cd /tmp && "$1" -m pip install -q "$REPO[test]" "$REPO/plugins/attention_sdpa" "$REPO/plugins/positional" \
    "$REPO/plugins/attention_reformer" "$REPO/plugins/attention_performer")
}

fast_lane() {  # fast_lane NAME PY: the tests of the checkout against the installed packages
  local log="$OUT/$1.log" start rc
  start=$(date +%s)
  # the venv's bin first on PATH: tests that start `effx` or `torchrun` must get the venv's, not the system's
  (cd "$REPO" && env -u PYTHONPATH -u EFFX_WT HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled \
    PATH="$(dirname "$2"):$PATH" bash -c "'$2' -m pytest $PYTEST_ARGS" > "$log" 2>&1)
  rc=$?
  echo "$1: python $("$2" -c 'import platform; print(platform.python_version())') torch $("$2" -c \
    'import torch; print(torch.__version__)') -> rc $rc in $(( $(date +%s) - start )) s: $(tail -1 "$log")" \
    | tee -a "$OUT/compat.txt"
}

for v in $PYTHONS; do
  py=$(interpreter "$v") || { echo "py$v: not installed in pyenv" | tee -a "$OUT/compat.txt"; continue; }
  env_py=$(make_env "py$v" "$py") && install_torch "$env_py" "" && install_effx "$env_py" &&
    fast_lane "py$v" "$env_py" || echo "py$v: install failed" | tee -a "$OUT/compat.txt"
done

if [[ -n "$TORCH_TRY" ]]; then
  py=$(interpreter "$PYTHON_OLD")
  for t in $TORCH_TRY; do
    env_py=$(make_env "torch$t" "$py") || break
    if install_torch "$env_py" "$t" && "$env_py" -c "import torch" 2>/dev/null; then
      # effx's declared floor would pull torch back up: put the tried release back in without dependencies
      install_effx "$env_py" && install_torch "$env_py" "$t" --no-deps --force-reinstall && fast_lane "torch$t" "$env_py" || echo "torch$t: effx install failed" | tee -a "$OUT/compat.txt"
      break
    fi
    echo "torch$t: does not install on CPU here" | tee -a "$OUT/compat.txt"
    rm -rf "$OUT/venv-torch$t"
  done
fi
cat "$OUT/compat.txt"
