#!/usr/bin/env bash
# System packages are a bonus, never a requirement: on Debian/Ubuntu, with root or passwordless
# sudo, install what is missing of
#   dataset-fashion-mnist    Fashion-MNIST (else vitcore downloads it: python -m vitcore.assets fetch)
#   tuxpaint-stamps-default  the Tux Paint stamps (else vitcore downloads the upstream release)
#   chromium                 the browser check of the built site (else that check is skipped)
# Anywhere else, say what is skipped and go on. Never fails the setup: a failed apt-get is reported.
# VITCORE_APT=0 skips this step on purpose.
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
echo "[setup] installing system packages: ${missing[*]}"
if "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
  exit 0
fi
"${SUDO[@]}" apt-get update -q >/dev/null 2>&1 || echo "[setup] apt-get update failed"
failed=()
for pkg in "${missing[@]}"; do  # one at a time: a package this distribution lacks must not block the rest
  "${SUDO[@]}" apt-get install -y -q "$pkg" >/dev/null 2>&1 || failed+=("$pkg")
done
if ((${#failed[@]})); then
  echo "[setup] WARNING: apt-get could not install ${failed[*]}; going on without (see python -m vitcore.doctor)"
fi
exit 0
