#!/usr/bin/env bash
# Install rigcap into ./.venv (README's first command runs this, and so does CI).
#   bash install.sh            # rigcap + what the tests need (pytest, aniposelib, CPU torch)
#   bash install.sh --with-test-display   # also Xvfb and software Vulkan, for the real-window test (CI)
set -euo pipefail
cd "$(dirname "$0")"

# The window test (tests/test_viewer_window.py) opens Open3D's GUI under Xvfb; it needs Vulkan
# (Mesa's software lavapipe will do).  Only for tests: a user's machine has a display already.
if [ "${1:-}" = "--with-test-display" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq xvfb xauth libvulkan1 mesa-vulkan-drivers imagemagick
fi

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
