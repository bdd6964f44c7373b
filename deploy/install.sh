#!/usr/bin/env bash
# Install (or update) the edge inspection agent on a device. Idempotent: run it again after a
# `git pull` to update the code; configs, credentials and flashed models are never overwritten.
#
#   sudo deploy/install.sh                 # Raspberry Pi, Jetson or any Debian-like Linux
#   sudo deploy/install.sh --dry-run       # print every action, change nothing
#   deploy/install.sh --root /tmp/r --no-pip --no-systemd --python /tmp/venv/bin/python   # tests
#
# Platform: /proc/device-tree/model says "Raspberry Pi" -> extra [tflite] (LiteRT) and a venv with
# --system-site-packages (picamera2/libcamera come from apt: python3-picamera2); /etc/nv_tegra_release
# -> Jetson: no runtime extra from PyPI, onnxruntime-gpu from NVIDIA's Jetson wheel (--ort-wheel);
# anything else -> [tflite,onnx].
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
PREFIX=/opt/inspection-agent
DRY_RUN=0
DO_PIP=1
DO_SYSTEMD=1
PYTHON=python3
EXTRAS=auto
ORT_WHEEL=
PIP_ARGS=()
DEMO_MODEL="$SOURCE/models/demo-defects/1.0.0"
PLATFORM=

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --dry-run            print every action without doing it
  --root DIR           install into DIR instead of / (for tests and image builds)
  --prefix DIR         venv location (default $PREFIX)
  --python PATH        interpreter for the venv (default python3)
  --extras LIST        pip extras, e.g. tflite or tflite,onnx (default: by platform)
  --ort-wheel FILE     onnxruntime-gpu wheel to install (Jetson, from NVIDIA's Jetson wheels)
  --pip-arg ARG        extra argument for pip install (repeatable), e.g. --pip-arg=--no-index
  --no-pip             do not create the venv or pip install (the agent is already importable)
  --no-systemd         do not run systemd-sysusers/systemd-tmpfiles/systemctl (files are still copied)
  --demo-model DIR     package to seed the model store with (default: models/demo-defects/1.0.0)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --root) ROOT="$2"; shift ;;
        --prefix) PREFIX="$2"; shift ;;
        --python) PYTHON="$2"; shift ;;
        --extras) EXTRAS="$2"; shift ;;
        --ort-wheel) ORT_WHEEL="$2"; shift ;;
        --pip-arg=*) PIP_ARGS+=("${1#--pip-arg=}") ;;
        --no-pip) DO_PIP=0 ;;
        --no-systemd) DO_SYSTEMD=0 ;;
        --demo-model) DEMO_MODEL="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

R="${ROOT%/}"                       # "" for the real root
VENV="$R$PREFIX/venv"
ETC="$R/etc/inspection-agent"
STATE="$R/var/lib/inspection-agent"
STORE="$STATE/models"

run() {                             # every change goes through here, so --dry-run shows it all
    echo "+ $*"
    if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}
note() { echo "install.sh: $*"; }

detect_platform() {
    local model=""
    [[ -r "$R/proc/device-tree/model" ]] && model="$(tr -d '\0' < "$R/proc/device-tree/model")"
    if [[ "$model" == *"Raspberry Pi"* ]]; then
        PLATFORM=raspberrypi; [[ $EXTRAS == auto ]] && EXTRAS=tflite
    elif [[ -e "$R/etc/nv_tegra_release" ]]; then
        PLATFORM=jetson; [[ $EXTRAS == auto ]] && EXTRAS=
    else
        PLATFORM=generic; [[ $EXTRAS == auto ]] && EXTRAS=tflite,onnx
    fi
    note "platform $PLATFORM${model:+ ($model)}, extras [${EXTRAS}]"
}

install_venv() {
    [[ $DO_PIP -eq 1 ]] || { note "skipping venv and pip (--no-pip)"; return; }
    if [[ ! -x "$VENV/bin/python" ]]; then
        local site=()
        [[ $PLATFORM == raspberrypi ]] && site=(--system-site-packages)   # picamera2 from apt
        run mkdir -p "$R$PREFIX"
        run "$PYTHON" -m venv "${site[@]}" "$VENV"
    fi
    run "$VENV/bin/pip" install --upgrade "${PIP_ARGS[@]}" "$SOURCE${EXTRAS:+[$EXTRAS]}"
    if [[ -n "$ORT_WHEEL" ]]; then
        run "$VENV/bin/pip" install "${PIP_ARGS[@]}" "$ORT_WHEEL"
    elif [[ $PLATFORM == jetson ]]; then
        note "Jetson: install NVIDIA's onnxruntime-gpu wheel for your JetPack with --ort-wheel FILE (docs/deploy.md)"
    fi
    PYTHON="$VENV/bin/python"
}

install_file() {                    # install_file MODE SRC DEST [keep]: keep = never overwrite
    local mode="$1" src="$2" dest="$3" keep="${4:-}"
    if [[ -e "$dest" && -n "$keep" ]]; then note "keeping existing $dest"; return; fi
    if [[ -e "$dest" ]] && cmp -s "$src" "$dest"; then return; fi
    run install -D -m "$mode" "$src" "$dest"
}

install_system_files() {
    install_file 0644 "$SOURCE/systemd/sysusers.d/inspection-agent.conf" "$R/usr/lib/sysusers.d/inspection-agent.conf"
    install_file 0644 "$SOURCE/systemd/tmpfiles.d/inspection-agent.conf" "$R/usr/lib/tmpfiles.d/inspection-agent.conf"
    install_file 0644 "$SOURCE/systemd/inspection-agent@.service" "$R/etc/systemd/system/inspection-agent@.service"
    install_file 0644 "$SOURCE/systemd/inspection-collector.service" "$R/etc/systemd/system/inspection-collector.service"
    [[ -f "$SOURCE/docs/deploy.md" ]] && install_file 0644 "$SOURCE/docs/deploy.md" "$R$PREFIX/docs/deploy.md"
    if [[ $DO_SYSTEMD -eq 1 ]]; then
        run systemd-sysusers --root="$ROOT" "$R/usr/lib/sysusers.d/inspection-agent.conf"
        run systemd-tmpfiles --create --root="$ROOT" "$R/usr/lib/tmpfiles.d/inspection-agent.conf"
    else
        note "skipping systemd-sysusers/systemd-tmpfiles (--no-systemd)"
        run mkdir -p "$STORE" "$ETC/credentials"
    fi
}

install_config() {
    install_file 0640 "$SOURCE/deploy/example-config.yaml" "$ETC/cam-01.yaml" keep
    if [[ ! -e "$ETC/credentials/mqtt-password" ]]; then
        # LoadCredential= refuses to start the unit when the file is missing; empty = no password.
        run install -D -m 0600 /dev/null "$ETC/credentials/mqtt-password"
    fi
}

seed_model_store() {
    if [[ ! -f "$DEMO_MODEL/manifest.yaml" ]]; then
        note "no demo model at $DEMO_MODEL; the store stays empty until deploy/flash-model"
        return
    fi
    # The installed agent's own `store install`: idempotent, and --activate-if-none sets `current`
    # only when the model has none yet, so a re-run never undoes a flash. No validation here: the
    # demo package ships with (and is tested with) this source, and the agent is not running yet.
    run "$PYTHON" -m agent store install "$DEMO_MODEL" --store "$STORE" \
        --activate-if-none --reload none --no-validate
}

fix_ownership() {
    local uid
    uid="$(awk -F: '$1 == "inspection" {print $3":"$4}' "$R/etc/passwd" 2>/dev/null || true)"
    if [[ -n "$uid" && $EUID -eq 0 ]]; then
        run chown -R "$uid" "$STATE"
        run chown "0:${uid#*:}" "$ETC" "$ETC/cam-01.yaml"
    else
        note "user inspection not in $R/etc/passwd (or not root): ownership left as is"
    fi
}

reload_systemd() {
    if [[ $DO_SYSTEMD -eq 1 && -z "$R" && -d /run/systemd/system ]]; then
        run systemctl daemon-reload
    fi
}

detect_platform
install_venv
install_system_files
install_config
seed_model_store
fix_ownership
reload_systemd
note "done. Edit $ETC/cam-01.yaml, then: systemctl enable --now inspection-agent@cam-01"
