#!/usr/bin/env bash
# The README's demo: a local mosquitto, the agent inspecting a replayed conveyor clip with the
# committed int8 demo model, and a subscriber printing every defect event as it arrives.
#   scripts/demo.sh [--runtime auto|tflite|onnx] [--frames N] [--fps F]     (--help: scripts/demo.py's)
# Everything runs on loopback in a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing mosquitto (the MQTT broker the demo talks to)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
if ! .venv/bin/python -c "import agent, ai_edge_litert, onnxruntime" 2>/dev/null; then
  echo "installing the agent into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[tflite,onnx]'
fi
exec .venv/bin/python scripts/demo.py "$@"
