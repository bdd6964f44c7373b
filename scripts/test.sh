#!/usr/bin/env bash
# Install what the test suite needs and run it. This is the README's test command, and CI runs exactly this.
#   OS packages: a real MQTT broker, OpenSSH server, GStreamer's RTSP server, ffmpeg, systemd-analyze,
#   chromium + chromium-driver (the review app's browser tests, through selenium).
#   Python: a venv in .venv with the agent and its tflite, onnx, dev and train extras (TensorFlow:
#   one test retrains the demo model on samples the collector gathered).
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mosquitto mosquitto-clients
  openssh-server openssh-client
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  ffmpeg systemd ansible-core
  chromium chromium-driver
  minisign
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing OS packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[tflite,onnx,dev,train,collector,web]'

exec .venv/bin/python -m pytest "$@"
