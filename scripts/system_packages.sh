#!/usr/bin/env bash
# Installs the system packages a target needs when they are missing (Debian's apt, as root), so
# `make up` and `make test` set up a fresh machine by themselves. Usage: system_packages.sh
# npm|chromium|gcc ... Without apt or root it says what to install and fails.
set -euo pipefail
declare -A command_of=([npm]=npm [chromium]=chromium [gcc]=gcc)
declare -A packages_of=([npm]="nodejs npm" [chromium]="chromium" [gcc]="gcc python3-dev")
missing=()
has_python_headers() {
  python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}
for need in "$@"; do
  if ! command -v "${command_of[$need]}" >/dev/null 2>&1; then
    missing+=(${packages_of[$need]})
  elif [ "$need" = gcc ] && ! has_python_headers; then
    missing+=(python3-dev)
  fi
done
((${#missing[@]})) || exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} (apt-get)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
