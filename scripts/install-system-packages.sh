#!/usr/bin/env bash
# Install the Debian packages prodgraph needs (by name), only those missing.
# bpy links X11/xkb client libraries even headless; EGL/GL serve EEVEE and Workbench;
# Node.js runs the Khronos glTF validator in tests; tests drive Chromium (through Playwright,
# never a downloaded browser) to check the offline docs pages, and start a throwaway PostgreSQL
# server (initdb and pg_ctl from the postgresql package, run as the postgres account it creates).
# `--runtime-only` (the Docker image) leaves the test tools out.
set -euo pipefail
packages=(libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libxxf86vm1 libsm6 libice6
          libgl1 libegl1 libexpat1 zlib1g)
[ "${1:-}" = "--runtime-only" ] || packages+=(nodejs npm chromium postgresql)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
# A machine image may ship node and npm outside Debian's packaging: that serves as well.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
