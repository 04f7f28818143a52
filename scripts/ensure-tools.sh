#!/usr/bin/env bash
# Installs the build tools the tests need when they are missing (fresh Debian 12 machine, root).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cmake >/dev/null || need+=(cmake)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if ((${#need[@]})); then
  echo "ensure-tools: installing ${need[*]}" >&2
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 || true
  fi
  if ! command -v cmake >/dev/null; then
    python3 -m pip install -q cmake >&2 || true
  fi
  for t in gcc g++ pkg-config cmake; do
    command -v "$t" >/dev/null || { echo "ensure-tools: $t is missing and could not be installed" >&2; exit 1; }
  done
fi
command -v cargo >/dev/null || { echo "ensure-tools: cargo (Rust) is required" >&2; exit 1; }

# CPython's own regression tests for Debian's python3.11 (the drop-in transparency check).
# Optional: without them that CPython's check is reported as absent, not passed.
if [ -x /usr/bin/python3.11 ] && [ ! -e /usr/lib/python3.11/test/test_threading.py ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null; then
  echo "ensure-tools: installing libpython3.11-testsuite (CPython's regression tests)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpython3.11-testsuite) >&2 \
    || echo "ensure-tools: libpython3.11-testsuite not installed; Debian 3.11's transparency check will be absent" >&2
fi
exit 0
