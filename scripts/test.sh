#!/usr/bin/env bash
# Install what the test suite needs and run it. This is the README's test command, and CI runs exactly this.
#   OS packages: a real MQTT broker, OpenSSH server, GStreamer's RTSP server, ffmpeg, systemd-analyze,
#   chromium + chromium-driver (the review app's browser tests, through selenium).
#   Python: a venv in .venv with the agent and its tflite, onnx, dev, collector, web, io, plc and
#   sparkplug extras, plus
#   the train extra (TensorFlow, ~1.5 GB: tests marked `train` retrain the demo model) when the
#   selected tests need it.
# Extra arguments go to pytest. With none, every test runs (CI runs exactly that).
#   scripts/test.sh -m "not slow"      the fast part; no TensorFlow is installed for it
#   scripts/test.sh --quick            the same
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mosquitto mosquitto-clients
  openssh-server openssh-client
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  ffmpeg systemd ansible-core
  chromium chromium-driver
  minisign sudo
  postgresql-15
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
if [ "${1:-}" = "--quick" ]; then
  shift
  set -- -m "not slow" "$@"
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[tflite,onnx,dev,collector,web,io,plc,sparkplug]'

# Ask pytest itself (same arguments: -m, -k, paths) whether any selected test is marked `train`;
# if the collection fails for any reason, install the extra anyway.
answer=$(mktemp)
.venv/bin/python - "$answer" "$@" >/dev/null 2>&1 <<'PY' || echo yes > "$answer"
import sys
import pytest

class Probe:
    found = False
    def pytest_collection_finish(self, session):
        Probe.found = any(item.get_closest_marker("train") for item in session.items)

code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[2:]], plugins=[Probe()])
with open(sys.argv[1], "w") as out:
    out.write("yes" if Probe.found or code not in (0, 5) else "no")
PY
needs_train=$(cat "$answer"); rm -f "$answer"
if [ "$needs_train" != "no" ]; then
  .venv/bin/python -m pip install -q -e '.[tflite,onnx,dev,collector,web,io,plc,sparkplug,train]'
else
  echo "no selected test is marked train: the train extra (TensorFlow) is not installed"
fi

exec .venv/bin/python -m pytest "$@"
