# shellcheck shell=bash
# Shared helpers for scripts/make-samples and scripts/make-bench-pcap.
# Sourced, not executed. Everything here works only inside network namespaces
# that these scripts create themselves (prefix given by the caller).

# dcmtk binaries by absolute path: pip's pynetdicom installs python entry points
# named storescu/echoscu/findscu/... that may shadow dcmtk on $PATH (pyenv shims).
DCMTK_BIN=${DCMTK_BIN:-/usr/bin}
# python packages, pinned so regenerated DICOM files stay byte-identical
PY_PKGS=(pydicom==3.0.2 pynetdicom==3.0.4)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

lab_need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, tcpdump)"
}

# apt-get install the missing Debian packages (by command they provide)
lab_install_apt() {
    local -a missing=()
    local pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        if [[ $cmd == /* ]]; then [[ -x $cmd ]] || missing+=("$pkg")
        else command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg"); fi
    done
    ((${#missing[@]})) || return 0
    # de-duplicate
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # wireshark-common asks whether non-root users may capture
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Pick a python that has pydicom + pynetdicom at the pinned versions; install
# them with pip if needed (venv fallback for an externally-managed python).
lab_python() {
    local py=${PYTHON:-python3}
    local check='import sys, pydicom, pynetdicom; sys.exit(0 if (pydicom.__version__, pynetdicom.__version__) == ("3.0.2", "3.0.4") else 1)'
    if "$py" -c "$check" 2>/dev/null; then PY=$py; return 0; fi
    log "installing python packages: ${PY_PKGS[*]}"
    if "$py" -m pip install -q --disable-pip-version-check "${PY_PKGS[@]}" >/dev/null 2>&1 \
        && "$py" -c "$check" 2>/dev/null; then PY=$py; return 0; fi
    local venv=${PACSTAP_VENV:-/var/tmp/pacstap-samples-venv}
    if [[ ! -x $venv/bin/python ]]; then
        "$py" -m venv "$venv" 2>/dev/null || { lab_install_apt "/usr/lib/python3/dist-packages/ensurepip:python3-venv"; /usr/bin/python3 -m venv "$venv"; }
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PKGS[@]}" >/dev/null
    "$venv/bin/python" -c "$check" || die "could not install ${PY_PKGS[*]}"
    PY=$venv/bin/python
}

# --- namespaces -------------------------------------------------------------

LAB_PIDS=()       # every background process we start (killed on exit)
LAB_NETNS=()      # every namespace we create (deleted on exit)

lab_ns_add() {
    local ns=$1
    lab_ns_del "$ns"
    ip netns add "$ns"
    LAB_NETNS+=("$ns")
    ip -n "$ns" link set lo up
    # no IPv6 in the lab: keeps ND/MLD/router-solicitation noise out of captures
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# Delete a namespace; processes still running in it (left over by an earlier,
# interrupted run of these scripts) are ended by pid first.
lab_ns_del() {
    local ns=$1 pid
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$ns" || return 0
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 0.3
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
}

# Turn off every offload that would make the capture unlike a real wire:
# TSO/GSO/GRO (super-segments), tx checksum (unfinished checksums), LRO.
lab_offloads_off() {
    local ns=$1 dev=$2 f
    for f in tso gso gro lro tx sg; do
        ip netns exec "$ns" ethtool -K "$dev" "$f" off >/dev/null 2>&1 || true
    done
    local k
    k=$(ip netns exec "$ns" ethtool -k "$dev")
    for f in tcp-segmentation-offload generic-segmentation-offload generic-receive-offload tx-checksumming; do
        grep -qE "^$f: off" <<<"$k" || die "$ns/$dev: could not turn $f off"
    done
}

# veth pair: $1 ns A, $2 dev in A, $3 ns B, $4 dev in B
lab_veth() {
    local nsa=$1 deva=$2 nsb=$3 devb=$4 mtu=${5:-1500}
    ip link add "tmp$$a" type veth peer name "tmp$$b"
    ip link set "tmp$$a" netns "$nsa"
    ip link set "tmp$$b" netns "$nsb"
    ip -n "$nsa" link set "tmp$$a" name "$deva"
    ip -n "$nsb" link set "tmp$$b" name "$devb"
    ip -n "$nsa" link set "$deva" mtu "$mtu"
    ip -n "$nsb" link set "$devb" mtu "$mtu"
    lab_offloads_off "$nsa" "$deva"
    lab_offloads_off "$nsb" "$devb"
}

# drop a pid that has been waited for (never signal a recycled pid later)
lab_forget() {
    local gone=$1 pid keep=()
    for pid in "${LAB_PIDS[@]}"; do [[ $pid == "$gone" ]] || keep+=("$pid"); done
    LAB_PIDS=("${keep[@]}")
}

lab_cleanup() {
    local pid ns i alive
    for pid in "${LAB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for i in $(seq 50); do          # up to 10 s for a clean shutdown (Orthanc)
        alive=0
        for pid in "${LAB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    for pid in "${LAB_PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "${LAB_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for ns in "${LAB_NETNS[@]}"; do
        lab_ns_del "$ns"
    done
    LAB_PIDS=(); LAB_NETNS=()
}

# Run something in the background inside a namespace; pid in $BG_PID.
lab_bg() {
    local ns=$1; shift
    ip netns exec "$ns" "$@" &
    BG_PID=$!
    LAB_PIDS+=("$BG_PID")
}

# wait until "$@" succeeds (max $TRIES x 0.2 s)
lab_wait_for() {
    local tries=${TRIES:-100}
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        ((tries > 0)) || return 1
        sleep 0.2
    done
}

# --- capture ----------------------------------------------------------------

# cap_start NS IFACE FILE [extra tcpdump args...]; pid in $CAP_PID, stderr in FILE.err
cap_start() {
    local ns=$1 ifc=$2 file=$3; shift 3
    rm -f "$file" "$file.err"
    ip netns exec "$ns" tcpdump -Z root -n -s 0 -U -B "${CAP_BUF_KB:-4096}" -i "$ifc" -w "$file" "$@" 2>"$file.err" &
    CAP_PID=$!
    LAB_PIDS+=("$CAP_PID")
    TRIES=50 lab_wait_for grep -q 'listening on' "$file.err" || die "tcpdump on $ns/$ifc did not start: $(cat "$file.err")"
}

# cap_stop PID FILE : SIGINT tcpdump, wait, insist on 0 kernel drops
cap_stop() {
    local pid=$1 file=$2
    kill -INT "$pid"
    wait "$pid" || true
    lab_forget "$pid"
    local drops
    drops=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$file.err")
    [[ -n $drops ]] || die "no tcpdump statistics for $file: $(cat "$file.err")"
    [[ $drops == 0 ]] || die "tcpdump dropped $drops packets writing $file"
    local n
    n=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$file.err")
    log "captured $(basename "$file"): $n packets, 0 dropped by kernel"
    rm -f "$file.err"
}
