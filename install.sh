#!/usr/bin/env bash
# Install rigcap into ./.venv (README's first command runs this, and so does CI).
#   bash install.sh            # rigcap + what the tests need (pytest, aniposelib, CPU torch)
set -euo pipefail
cd "$(dirname "$0")"

# Open3D's wheel links Debian's libusb-1.0 (it fails to import without it).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libusb-1.0-0
  else
    echo "install.sh: install libusb-1.0 with your system's package manager (Open3D needs it)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"
echo "rigcap installed in .venv: .venv/bin/rigcap --help"
