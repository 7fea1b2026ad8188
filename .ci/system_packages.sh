#!/usr/bin/env bash
# System packages are a bonus, never a requirement: on Debian/Ubuntu, with root or passwordless
# sudo, install what is missing of
#   dataset-fashion-mnist    Fashion-MNIST (else vitcore downloads it: python -m vitcore.assets fetch)
#   tuxpaint-stamps-default  the Tux Paint stamps (else vitcore downloads the upstream release)
#   chromium                 the browser check of the built site (else that check is skipped)
# Anywhere else, say what is skipped and go on. Never fails the setup: a failed apt-get is reported
# with apt's own error lines (a browser check that then lacks Chromium says SKIPPED, which fails
# under CI=true: tests/ci_skip.py). VITCORE_APT=0 skips this step on purpose.
set -uo pipefail
APT_PACKAGES=(dataset-fashion-mnist tuxpaint-stamps-default chromium)
what="the data then come through vitcore's download (python -m vitcore.assets fetch) and the browser check is skipped"

if [ "${VITCORE_APT:-1}" = 0 ]; then
  echo "[setup] VITCORE_APT=0: not installing system packages; $what"
  exit 0
fi
have() { local path; path=$(command -v "$1" 2>/dev/null) && [ -x "$path" ]; }  # found and runnable
if ! have apt-get || ! have dpkg; then
  echo "[setup] no apt-get/dpkg here (not Debian/Ubuntu): skipping system packages (${APT_PACKAGES[*]}); $what"
  exit 0
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif have sudo && sudo -n true >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "[setup] not root and no passwordless sudo: skipping system packages (${missing[*]}); $what"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# apt-get's progress is kept out of the log, its errors are not: a failed call prints what apt
# said (its error and warning lines, else all of it). Bash only: nothing else need be installed.
run_apt() {  # run_apt ARGS...: apt-get ARGS (with sudo where needed), its errors shown on failure
  local out rc=0 line shown=0
  out=$("${SUDO[@]}" apt-get "$@" 2>&1) || rc=$?
  ((rc)) || return 0
  echo "[setup] apt-get $* failed (exit $rc); apt said:"
  while IFS= read -r line; do
    case "$line" in E:* | W:* | Err:*) echo "[setup]   $line"; shown=1 ;; esac
  done <<<"$out"
  ((shown)) || while IFS= read -r line; do echo "[setup]   $line"; done <<<"$out"
  return "$rc"
}
echo "[setup] installing system packages: ${missing[*]}"
if run_apt install -y -q "${missing[@]}"; then
  exit 0
fi
echo "[setup] updating the package lists, then one package at a time"
run_apt update -q || true  # (reported above) the lists may still be recent enough
failed=()
for pkg in "${missing[@]}"; do  # one at a time: a package this distribution lacks must not block the rest
  run_apt install -y -q "$pkg" || failed+=("$pkg")
done
if ((${#failed[@]})); then
  echo "[setup] WARNING: apt-get could not install ${failed[*]}; going on without (see python -m vitcore.doctor)"
fi
exit 0
