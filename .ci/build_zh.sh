#!/usr/bin/env bash
# The Chinese edition (中文版): the same sources built with language=zh_CN and the translations in
# locales/zh_CN, into _build/html/zh beside the English site. Run it after the English build
# (`jupyter-book build .`, .ci/book or .ci/test): the notebooks' outputs come from the English
# build's execution cache (_build/.jupyter_cache), so nothing is executed a second time.
#   bash .ci/build_zh.sh                  warnings are errors (-W --keep-going), nitpicky (-n)
#   bash .ci/build_zh.sh --require-cache  also fail if any notebook had to be executed
#   bash .ci/build_zh.sh --all            read every document again (fresh environment)
#   bash .ci/build_zh.sh --lenient        warnings are printed, not errors (as .ci/book builds English)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/env.sh

require_cache=0; fresh=(); strict=(-W)
for arg in "$@"; do
  case "$arg" in
    --require-cache) require_cache=1 ;;
    --all) fresh=(-E) ;;
    --lenient) strict=() ;;
    *) echo "unknown option $arg"; exit 2 ;;
  esac
done

if [ ! -d _build/.jupyter_cache ]; then
  echo "[zh] no _build/.jupyter_cache: build the English edition first (bash .ci/book)"
  [ "$require_cache" = 1 ] && exit 1
fi

start=$(date +%s)
log=_build/zh/build.log
mkdir -p _build/zh
set +e
.venv/bin/python locales/build_edition.py html _build/zh/html --lang zh_CN -n "${strict[@]}" "${fresh[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "[zh] the Chinese edition failed to build (log: $log)"; exit "$status"; }

# The site: _build/html/zh, linked both ways with the English pages (locales/bilingual.py).
rm -rf _build/html/zh
mkdir -p _build/html
cp -a _build/zh/html _build/html/zh
# index.html redirects to the first page, as in the English site.
echo '<meta http-equiv="Refresh" content="0; url=book/intro.html" />' > _build/html/zh/index.html

hits=$(grep -c "Using cached notebook" "$log" || true)
runs=$(grep -c "Executing notebook" "$log" || true)
echo "[zh] built _build/html/zh in $(( $(date +%s) - start )) s: ${hits} notebook(s) from the execution cache, ${runs} executed"
if [ "$require_cache" = 1 ] && [ "$runs" -gt 0 ]; then
  echo "[zh] --require-cache: ${runs} notebook(s) were executed again instead of coming from the English build's cache"
  exit 1
fi
