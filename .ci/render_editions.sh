#!/usr/bin/env bash
# Render both editions of the book from the execution cache that .ci/execute_notebooks.py filled,
# at the same time (each Sphinx build uses one core; nothing is executed here):
# `jupyter-book build . ARGS` into _build/html, and .ci/build_zh.sh into _build/zh/html, which it
# then copies to _build/html/zh. Fails if either fails. Used by .ci/book and .ci/test, after
# `source .ci/env.sh` (and, in .ci/test, the second kernel path).
#   bash .ci/render_editions.sh [--zh-lenient] [jupyter-book build arguments]
#   --zh-lenient   the Chinese edition prints its warnings instead of failing on them
set -euo pipefail
cd "$(dirname "$0")/.."
zh_args=()
if [ "${1:-}" = --zh-lenient ]; then
  zh_args=(--lenient)
  shift
fi
mkdir -p _build/zh
bash .ci/build_zh.sh ${zh_args[@]+"${zh_args[@]}"} > _build/zh/edition.log 2>&1 &  # (bash 3.2: an empty array)
zh_pid=$!
rc=0
.venv/bin/jupyter-book build . "$@" || rc=$?
zh_rc=0
wait "$zh_pid" || zh_rc=$?
echo "[render] the Chinese edition (.ci/build_zh.sh):"
cat _build/zh/edition.log
[ "$rc" -eq 0 ] || exit "$rc"
exit "$zh_rc"
