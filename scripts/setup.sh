#!/usr/bin/env bash
# Set up a fresh machine: system packages (Fashion-MNIST data, Chromium for the browser
# test) when we are root with apt, then scratchcnn with everything its tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null
fi
python3 -m pip install -q -e ".[test]"
