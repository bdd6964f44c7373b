#!/usr/bin/env bash
# Install (or update) the edge inspection agent on a device or the collector host. Idempotent: run
# it again after a `git pull` to update the code; configs, credentials and flashed models are kept.
#
#   sudo deploy/install.sh                                  # profile detected: pi, jetson or x86
#   sudo deploy/install.sh --device-id line3-cam-a --site plant-1 --line line-3
#   sudo deploy/install.sh --profile collector              # the central collector (+ review web app)
#   sudo deploy/install.sh --dry-run                        # print every action, change nothing
#   deploy/install.sh --root /tmp/r --skip-pip --arch aarch64   # a temporary root (tests, image builds)
#   sudo deploy/install.sh --io                             # the instance drives GPIO (docs/line.md)
#
# Profiles: pi (Raspberry Pi OS 64-bit: LiteRT, venv with --system-site-packages for the OS's
# picamera2), jetson (JetPack 6: the system OpenCV with GStreamer, no PyPI OpenCV; onnxruntime-gpu
# from NVIDIA's wheel with --ort-wheel), x86 (any 64-bit Debian-like Linux: LiteRT and onnxruntime),
# collector (the collector and review web app, extras collector,web). Unsupported platforms are
# refused with the reason (docs/deploy.md#supported-platforms).
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
PREFIX=/opt/inspection-agent
DRY_RUN=0
DO_PIP=1
DO_SYSTEMD=1
PYTHON=python3
PROFILE=auto
EXTRAS=auto
ARCH=
PACKAGE=
ORT_WHEEL=
PIP_ARGS=()
DEMO_MODEL="$SOURCE/models/demo-defects/1.0.0"
DEVICE_ID=
SITE=plant-1
LINE=line-1
INSTANCE=cam-01
TECHNICIANS=()
DEPLOY_KEY=
SERVICE_USER=inspection
DEPLOY_USER=inspection-deploy
IO=0

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --profile NAME       pi | jetson | x86 | collector (default: detected from the hardware)
  --device-id ID       this device's identity: MQTT client id, topics, ACL user (default: the hostname)
  --site NAME          device.site in the new config (default $SITE)
  --line NAME          device.line in the new config (default $LINE)
  --instance NAME      config /etc/inspection-agent/NAME.yaml, unit inspection-agent@NAME (default $INSTANCE)
  --technician USER    add USER to group $SERVICE_USER: read configs and state, run the wrapper (repeatable)
  --deploy-key FILE    SSH public key(s) for the $DEPLOY_USER user (deploy/flash-model, Ansible)
  --io                 this instance uses GPIO (io: in its config): the io extra and the drop-in
                       inspection-agent@NAME.service.d/gpio.conf (char-gpiochip, group gpio)
  --root DIR           install into DIR instead of / (tests, image builds)
  --arch ARCH          machine to assume instead of the interpreter's (aarch64, x86_64, armv7l, ...)
  --dry-run            print every action without doing it
  --prefix DIR         venv location (default $PREFIX)
  --python PATH        interpreter for the venv (default python3)
  --package SPEC       what pip installs (default: this checkout), e.g. a built wheel
  --wheelhouse DIR     install offline from DIR (pip --no-index --find-links DIR)
  --extras LIST        pip extras instead of the profile's, e.g. tflite,onnx
  --ort-wheel FILE     onnxruntime-gpu wheel to install (Jetson, from NVIDIA's Jetson wheels)
  --pip-arg ARG        extra argument for pip install (repeatable), e.g. --pip-arg=--no-cache-dir
  --skip-pip           do not create the venv or pip install (the agent is already importable)
  --no-systemd         do not run systemd-sysusers/systemd-tmpfiles/systemctl (files are still copied)
  --demo-model DIR     package to seed the model store with (default: models/demo-defects/1.0.0)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="$2"; shift ;;
        --device-id) DEVICE_ID="$2"; shift ;;
        --site) SITE="$2"; shift ;;
        --line) LINE="$2"; shift ;;
        --instance) INSTANCE="$2"; shift ;;
        --technician) TECHNICIANS+=("$2"); shift ;;
        --deploy-key) DEPLOY_KEY="$2"; shift ;;
        --root) ROOT="$2"; shift ;;
        --io) IO=1 ;;
        --arch) ARCH="$2"; shift ;;
        --dry-run) DRY_RUN=1 ;;
        --prefix) PREFIX="$2"; shift ;;
        --python) PYTHON="$2"; shift ;;
        --package) PACKAGE="$2"; shift ;;
        --wheelhouse) PIP_ARGS+=(--no-index --find-links "$2"); shift ;;
        --extras) EXTRAS="$2"; shift ;;
        --ort-wheel) ORT_WHEEL="$2"; shift ;;
        --pip-arg=*) PIP_ARGS+=("${1#--pip-arg=}") ;;
        --pip-arg) PIP_ARGS+=("$2"); shift ;;
        --skip-pip|--no-pip) DO_PIP=0 ;;
        --no-systemd) DO_SYSTEMD=0 ;;
        --demo-model) DEMO_MODEL="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

R="${ROOT%/}"                       # "" for the real root
VENV="$R$PREFIX/venv"
CLI="$PREFIX/venv/bin/inspection-agent"  # as seen on the device (no --root prefix)
ETC="$R/etc/inspection-agent"
STATE="$R/var/lib/inspection-agent"
STORE="$STATE/models"
NAME_OK='^[A-Za-z0-9_.-]+$'          # topic-safe, as device.id/site/line must be

run() {                             # every change goes through here, so --dry-run shows it all
    echo "+ $*"
    if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}
note() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $*" >&2; exit 2; }

check_names() {
    local what value
    for what in site line instance; do
        case $what in site) value=$SITE ;; line) value=$LINE ;; instance) value=$INSTANCE ;; esac
        [[ $value =~ $NAME_OK ]] || usage_error "--$what '$value': only letters, digits, '_', '-', '.'"
    done
    for value in "${TECHNICIANS[@]}"; do
        [[ $value =~ $NAME_OK ]] || usage_error "--technician '$value': not a user name"
    done
    if [[ -z "$DEVICE_ID" ]]; then
        if [[ -s "$R/etc/hostname" ]]; then DEVICE_ID="$(head -n1 "$R/etc/hostname")"; else DEVICE_ID="$(hostname)"; fi
        DEVICE_ID="${DEVICE_ID%%.*}"
    fi
    [[ $DEVICE_ID =~ $NAME_OK ]] \
        || usage_error "--device-id '$DEVICE_ID': only letters, digits, '_', '-', '.' (it is the MQTT client id)"
}

# --- platform -----------------------------------------------------------------------------------

# Prints "MACHINE POINTER_BITS MAJOR.MINOR" of the interpreter the venv will use: the pointer size,
# not `uname -m`, tells a 32-bit userland on a 64-bit Pi kernel (what 32-bit Pi OS runs on a Pi 4/5).
probe_python() {
    "$PYTHON" -c 'import platform, struct, sys; print(platform.machine(), struct.calcsize("P") * 8, "%d.%d" % sys.version_info[:2])' \
        2>/dev/null || die "cannot run $PYTHON: install python3 (>= 3.10) or pass --python PATH"
}

refuse() {
    echo "install.sh: unsupported platform: $*" >&2
    echo "install.sh: supported: Raspberry Pi OS 64-bit (Bookworm), JetPack 6, 64-bit Debian 12 / Ubuntu 22.04+ with Python >= 3.10 (docs/deploy.md)" >&2
    exit 3
}

check_platform() {
    local machine bits pyver model="" tegra=""
    read -r machine bits pyver <<<"$(probe_python)"
    if [[ -n "$ARCH" ]]; then
        machine="$ARCH"
        case "$ARCH" in armv6l|armv7l|armhf|armel|i386|i686) bits=32 ;; *) bits=64 ;; esac
    fi
    [[ -r "$R/proc/device-tree/model" ]] && model="$(tr -d '\0' < "$R/proc/device-tree/model")"
    [[ -r "$R/etc/nv_tegra_release" ]] && tegra="$(head -n1 "$R/etc/nv_tegra_release")"
    if [[ $bits -ne 64 ]]; then
        refuse "32-bit userland ($machine${model:+, $model}): numpy, OpenCV, PyYAML, LiteRT and onnxruntime publish no 32-bit ARM wheels. Flash Raspberry Pi OS (64-bit)."
    fi
    if [[ $tegra =~ R(3[0-5]|2[0-9]) ]]; then
        refuse "JetPack 5 or older (L4T ${BASH_REMATCH[0]}, $tegra) ships Python 3.8, below requires-python >= 3.10. Flash JetPack 6 (L4T R36)."
    fi
    PYVER=$pyver
    local major="${pyver%%.*}" minor="${pyver#*.}"
    if (( major < 3 || (major == 3 && minor < 10) )); then
        refuse "Python $pyver ($PYTHON) is below requires-python >= 3.10 (Debian 11 / Pi OS Bullseye ship 3.9). Upgrade the OS or pass --python python3.11."
    fi
    if [[ $PROFILE == auto ]]; then
        if [[ $model == *"Raspberry Pi"* ]]; then PROFILE=pi
        elif [[ -n $tegra ]]; then PROFILE=jetson
        elif [[ $machine == x86_64 || $machine == amd64 ]]; then PROFILE=x86
        else usage_error "no profile for a $machine board that is neither a Raspberry Pi nor a Jetson: pass --profile pi|x86|collector"
        fi
    fi
    HOST_PROFILE=x86
    [[ $model == *"Raspberry Pi"* ]] && HOST_PROFILE=pi
    [[ -n $tegra ]] && HOST_PROFILE=jetson
    note "platform $machine, Python $pyver${model:+, $model}${tegra:+, $tegra}: profile $PROFILE"
}

select_profile() {
    local extras
    case "$PROFILE" in
        pi) extras=tflite ;;
        jetson) extras= ;;          # onnxruntime-gpu from NVIDIA (--ort-wheel); OpenCV from JetPack
        x86) extras=tflite,onnx ;;
        collector) extras=collector,web ;;
        *) usage_error "--profile '$PROFILE': expected pi, jetson, x86 or collector" ;;
    esac
    if [[ $IO -eq 1 ]]; then
        [[ $PROFILE == collector ]] && usage_error "--io is for a device instance, not the collector"
        extras="${extras:+$extras,}io"
    fi
    [[ $EXTRAS == auto ]] && EXTRAS=$extras
    # The pinned set for this platform and Python (scripts/pin.py): pi-aarch64-cp311.txt,
    # jetson-jp6-aarch64-cp310.txt, x86_64-cp311.txt; a plain <profile>.txt wins when present.
    # The collector uses the pins of the hardware it runs on.
    local cp="cp${PYVER/./}" candidate
    CONSTRAINTS=
    for candidate in "$PROFILE.txt" "pi-aarch64-$cp.txt:pi" "jetson-jp6-aarch64-$cp.txt:jetson" "x86_64-$cp.txt:x86"; do
        [[ $candidate == *:* && ${candidate#*:} != "$HOST_PROFILE" ]] && continue
        if [[ -f "$SOURCE/deploy/constraints/${candidate%%:*}" ]]; then
            CONSTRAINTS="$SOURCE/deploy/constraints/${candidate%%:*}"; break
        fi
    done
    note "extras [${EXTRAS}], constraints ${CONSTRAINTS:-none (no deploy/constraints file for $HOST_PROFILE $cp)}"
}

# --- venv and pip -------------------------------------------------------------------------------

install_venv() {
    [[ $DO_PIP -eq 1 ]] || { note "skipping venv and pip (--skip-pip)"; return; }
    if [[ ! -x "$VENV/bin/python" ]]; then
        local site=()
        # pi: picamera2/libcamera come from apt (python3-picamera2); jetson: OpenCV with GStreamer.
        [[ $PROFILE == pi || $PROFILE == jetson ]] && site=(--system-site-packages)
        run mkdir -p "$R$PREFIX"
        run "$PYTHON" -m venv "${site[@]}" "$VENV"
    fi
    local spec="${PACKAGE:-$SOURCE}" pins=()
    [[ -n "$CONSTRAINTS" ]] && pins=(-c "$CONSTRAINTS")
    run "$VENV/bin/pip" install --upgrade "${PIP_ARGS[@]}" "${pins[@]}" "$spec${EXTRAS:+[$EXTRAS]}"
    if [[ $PROFILE == jetson ]]; then jetson_opencv; fi
    if [[ -n "$ORT_WHEEL" ]]; then
        run "$VENV/bin/pip" install "${PIP_ARGS[@]}" "$ORT_WHEEL"
    elif [[ $PROFILE == jetson ]]; then
        note "Jetson: install NVIDIA's onnxruntime-gpu wheel for JetPack 6 with --ort-wheel FILE (docs/deploy.md)"
    fi
    PYTHON="$VENV/bin/python"
}

# The PyPI wheel has no GStreamer, so `gst:nvarguscamerasrc ...` sources cannot open; JetPack's
# python3-opencv has it. The package depends on opencv-python-headless, so pip installs the wheel;
# removing it lets the venv (--system-site-packages) see the system cv2.
jetson_opencv() {
    run "$VENV/bin/pip" uninstall --yes opencv-python-headless
    [[ $DRY_RUN -eq 1 ]] && return
    if ! "$VENV/bin/python" -c 'import cv2, sys; sys.exit("GStreamer:                   YES" not in cv2.getBuildInformation())' 2>/dev/null; then
        note "WARNING: the system OpenCV is missing or has no GStreamer: sudo apt install python3-opencv (JetPack 6)"
    fi
}

# --- files --------------------------------------------------------------------------------------

install_file() {                    # install_file MODE SRC DEST [keep]: keep = never overwrite
    local mode="$1" src="$2" dest="$3" keep="${4:-}"
    if [[ -e "$dest" && -n "$keep" ]]; then note "keeping existing $dest"; return; fi
    if [[ -e "$dest" ]] && cmp -s "$src" "$dest"; then return; fi
    run install -D -m "$mode" "$src" "$dest"
}

# install_generated MODE DEST [keep] < text: a generated file, installed like install_file.
install_generated() { local mode="$1" dest="$2" keep="${3:-}" tmp; tmp="$(mktemp)"; cat > "$tmp"; install_file "$mode" "$tmp" "$dest" "$keep"; rm -f "$tmp"; }

install_system_files() {
    local unit=inspection-agent@.service
    [[ $PROFILE == collector ]] && unit=inspection-collector.service
    install_file 0644 "$SOURCE/systemd/sysusers.d/inspection-agent.conf" "$R/usr/lib/sysusers.d/inspection-agent.conf"
    install_file 0644 "$SOURCE/deploy/sysusers.d/inspection-deploy.conf" "$R/usr/lib/sysusers.d/inspection-deploy.conf"
    install_file 0644 "$SOURCE/systemd/tmpfiles.d/inspection-agent.conf" "$R/usr/lib/tmpfiles.d/inspection-agent.conf"
    install_file 0644 "$SOURCE/systemd/$unit" "$R/etc/systemd/system/$unit"
    if [[ $IO -eq 1 ]]; then        # GPIO only for this instance: the unit's device policy stays closed
        install_file 0644 "$SOURCE/systemd/inspection-agent-gpio.conf" \
            "$R/etc/systemd/system/inspection-agent@$INSTANCE.service.d/gpio.conf"
    fi
    [[ -f "$SOURCE/docs/deploy.md" ]] && install_file 0644 "$SOURCE/docs/deploy.md" "$R$PREFIX/docs/deploy.md"
    if [[ ${#TECHNICIANS[@]} -gt 0 ]]; then
        printf "m %s $SERVICE_USER\n" "${TECHNICIANS[@]}" \
            | install_generated 0644 "$R/etc/sysusers.d/inspection-technicians.conf"
    fi
    if [[ $DO_SYSTEMD -eq 1 ]]; then
        local conf
        for conf in "$R"/usr/lib/sysusers.d/inspection-{agent,deploy}.conf "$R"/etc/sysusers.d/inspection-technicians.conf; do
            if [[ -e $conf || $DRY_RUN -eq 1 ]]; then run systemd-sysusers --root="$ROOT" "$conf"; fi
        done
        run systemd-tmpfiles --create --root="$ROOT" "$R/usr/lib/tmpfiles.d/inspection-agent.conf"
    else
        note "skipping systemd-sysusers/systemd-tmpfiles (--no-systemd)"
        run mkdir -p "$STORE" "$ETC/credentials"
    fi
}

# The device's identity goes into the new config: device.id is also the MQTT client id and ACL
# user, so two devices installed from the same example would kick each other off the broker.
install_config() {
    if [[ $PROFILE == collector ]]; then
        install_file 0640 "$SOURCE/deploy/collector-example.yaml" "$ETC/collector.yaml" keep
    else
        local dest="$ETC/$INSTANCE.yaml"
        if [[ -e "$dest" ]]; then
            note "keeping existing $dest (its device.id stays; edit it to change)"
        else
            awk -v id="$DEVICE_ID" -v site="$SITE" -v line="$LINE" '
                /^[a-z]/ { section = $1 }
                section == "device:" && /^  id:/ { print "  id: " id; next }
                section == "device:" && /^  site:/ { print "  site: " site; next }
                section == "device:" && /^  line:/ { print "  line: " line; next }
                { print }' "$SOURCE/deploy/example-config.yaml" | install_generated 0640 "$dest"
            note "device.id $DEVICE_ID, site $SITE, line $LINE in $dest"
        fi
    fi
    if [[ ! -e "$ETC/credentials/mqtt-password" ]]; then
        # LoadCredential= refuses to start the unit when the file is missing; empty = no password.
        run install -D -m 0600 /dev/null "$ETC/credentials/mqtt-password"
    fi
}

# /usr/local/bin/inspection-agent: the venv's CLI on PATH, with the config found and the service
# user taken for the commands that write the store or the state (deploy/inspection-agent-wrapper).
install_wrapper() {
    sed -e "s|@CLI@|$CLI|" -e "s|@ETC@|/etc/inspection-agent|" -e "s|@USER@|$SERVICE_USER|" \
        "$SOURCE/deploy/inspection-agent-wrapper" | install_generated 0755 "$R/usr/local/bin/inspection-agent"
}

# A narrow sudoers rule instead of root logins: members of group inspection (technicians, the deploy
# user) run the agent's CLI as the service user; the service user may reload its units (SIGHUP: the
# model hot-swap), nothing else. The units' NoNewPrivileges=yes keeps the running agent from using it.
install_sudoers() {
    local tmp dest="$R/etc/sudoers.d/inspection-agent"
    tmp="$(mktemp)"
    cat > "$tmp" <<EOF
# Installed by deploy/install.sh; see docs/deploy.md#users-and-permissions.
# Group $SERVICE_USER (technicians, the $DEPLOY_USER user of deploy/flash-model): the agent's CLI as the service user.
%$SERVICE_USER ALL=($SERVICE_USER) NOPASSWD: $CLI
# The service user: reload an agent or the collector (model hot-swap after a flash), nothing else.
Cmnd_Alias INSPECTION_RELOAD = /usr/bin/systemctl reload inspection-agent@*.service, /bin/systemctl reload inspection-agent@*.service, /usr/bin/systemctl reload inspection-collector.service, /bin/systemctl reload inspection-collector.service
$SERVICE_USER ALL=(root) NOPASSWD: INSPECTION_RELOAD
EOF
    if command -v visudo >/dev/null; then
        visudo -cqf "$tmp" >/dev/null || { rm -f "$tmp"; die "the generated sudoers rule does not parse (visudo -cf)"; }
    else
        note "visudo not found: $dest installed unchecked (sudo is not installed?)"
    fi
    install_file 0440 "$tmp" "$dest"
    rm -f "$tmp"
}

install_deploy_key() {
    [[ -n "$DEPLOY_KEY" ]] || return 0
    [[ -r "$DEPLOY_KEY" ]] || usage_error "--deploy-key $DEPLOY_KEY: cannot read it"
    install_file 0600 "$DEPLOY_KEY" "$R/var/lib/$DEPLOY_USER/.ssh/authorized_keys"
}

seed_model_store() {
    [[ $PROFILE == collector ]] && return
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
    local ids
    ids="$(awk -F: -v u="$SERVICE_USER" '$1 == u {print $3":"$4}' "$R/etc/passwd" 2>/dev/null || true)"
    if [[ -n "$ids" && $EUID -eq 0 ]]; then
        run chown -R "$ids" "$STATE"
        run chown "0:${ids#*:}" "$ETC" "$ETC"/*.yaml
        local deploy
        deploy="$(awk -F: -v u="$DEPLOY_USER" '$1 == u {print $3":"$4}' "$R/etc/passwd" 2>/dev/null || true)"
        if [[ -n "$deploy" && -e "$R/var/lib/$DEPLOY_USER" ]]; then run chown -R "$deploy" "$R/var/lib/$DEPLOY_USER"; fi
    else
        note "user $SERVICE_USER not in $R/etc/passwd (or not root): ownership left as is"
    fi
}

reload_systemd() {
    if [[ $DO_SYSTEMD -eq 1 && -z "$R" && -d /run/systemd/system ]]; then
        run systemctl daemon-reload
    fi
}

check_names
check_platform
select_profile
install_venv
install_system_files
install_config
install_wrapper
install_sudoers
install_deploy_key
seed_model_store
fix_ownership
reload_systemd
if [[ $PROFILE == collector ]]; then
    note "done. Edit $ETC/collector.yaml, then: systemctl enable --now inspection-collector"
else
    note "done. Check $ETC/$INSTANCE.yaml (camera.source), then: systemctl enable --now inspection-agent@$INSTANCE"
fi
