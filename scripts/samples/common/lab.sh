# shellcheck shell=bash
# The ONE shared helper module of the sample pipelines under scripts/samples/ (dicom, web,
# scenarios, mirror, fragments) and of scripts/make-bench-pcap: root check and installs, the
# python with pinned packages, network namespaces and the bridge lab every pipeline builds, veth
# pairs with every ethtool offload off, tcpdump captures with 0 kernel drops, the sanitised
# command log of the READMEs. Its python half is common/samplelib.py (tshark facts, TSV tables,
# README rendering) and common/pcaplib.py (pcap records).
# Sourced, not executed. Everything here works only inside network namespaces that these
# scripts create themselves (prefix given by the caller).

# scripts/samples (this file is scripts/samples/common/lab.sh) and the repository root
SAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$SAMPLES/../.." && pwd)
# the python helpers of every pipeline import each other by module name (scen_data uses
# dicom/synth_dicom, scen_hl7 uses common/hl7_mllp, samples_readme renders web/web_readme)
export PYTHONPATH="$SAMPLES/common:$SAMPLES/dicom:$SAMPLES/web:$SAMPLES/scenarios:$SAMPLES/mirror${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in scripts/samples

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

# lab_scenario NS IFACE FILE cmd... : capture NS/IFACE into FILE while cmd runs, then give TCP
# $SETTLE s (default 1.5) to close before the capture stops (every pipeline's "scenario")
lab_scenario() {
    local ns=$1 ifc=$2 file=$3; shift 3
    cap_start "$ns" "$ifc" "$file"
    "$@"
    sleep "${SETTLE:-1.5}"
    cap_stop "$CAP_PID" "$file"
}

# --- the bridge lab ---------------------------------------------------------

# lab_bridge SW PREFIX IPS MACS HOST... : namespace SW holds bridge br0 (the "switch"); each
# HOST gets namespace PREFIX-HOST with eth0 (address ${IPS[HOST]}/24, MAC ${MACS[HOST]}, MTU
# 1500) whose peer HOST0 is a port of br0; every offload off (veths and bridge); permanent
# neighbour entries between every pair of hosts (no ARP in the captures), except the pairs for
# which the function named in $LAB_NO_NEIGH (if set) succeeds. IPS and MACS are the names of
# associative arrays. The tap point is then the bridge port of the host to watch.
lab_bridge() {
    local sw=$1 prefix=$2 h o
    local -n lb_ip=$3 lb_mac=$4
    shift 4
    lab_ns_add "$sw"
    ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0
    ip -n "$sw" link set br0 up
    for h in "$@"; do
        lab_ns_add "$prefix-$h"
        lab_veth "$prefix-$h" eth0 "$sw" "${h}0" 1500
        ip -n "$prefix-$h" link set eth0 address "${lb_mac[$h]}"
        ip -n "$prefix-$h" addr add "${lb_ip[$h]}/24" dev eth0
        ip -n "$prefix-$h" link set eth0 up
        ip -n "$sw" link set "${h}0" master br0
        ip -n "$sw" link set "${h}0" up
    done
    lab_offloads_off "$sw" br0
    for h in "$@"; do
        for o in "$@"; do
            [[ $h == "$o" ]] && continue
            [[ -n ${LAB_NO_NEIGH:-} ]] && "$LAB_NO_NEIGH" "$h" "$o" && continue
            ip -n "$prefix-$h" neigh replace "${lb_ip[$o]}" lladdr "${lb_mac[$o]}" dev eth0 nud permanent
        done
    done
}

# --- the command log of the READMEs -----------------------------------------

# lab_shq ARG... : shell-quote for the command log: plain words as they are, anything else in
# single quotes
lab_shq() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    printf '%s' "${out[*]}"
}

# lab_cmdlog SCENARIO LINE : append "SCENARIO<TAB>LINE" to $CMDLOG with the machine-specific
# paths replaced ($DCM -> <dicom>, $WORK -> <tmp>, scripts/samples relative, $PY -> python3)
lab_cmdlog() {
    local scen=$1 line=$2
    [[ -n ${DCM:-} ]] && line=${line//$DCM/<dicom>}
    [[ -n ${WORK:-} ]] && line=${line//$WORK/<tmp>}
    line=${line//$SAMPLES/scripts/samples}
    line=${line//$PY/python3}
    printf '%s\t%s\n' "$scen" "$line" >>"$CMDLOG"
}

# --- servers shared by the web, mirror and scenario labs ----------------------

# nginx from Debian, without letting the package start a system-wide nginx on :80 in
# the root namespace (a temporary policy-rc.d that forbids service starts, removed
# again unless one was there before). The labs run their own nginx in a namespace.
lab_install_nginx() {
    [[ -x /usr/sbin/nginx ]] && return 0
    local own_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, scripts/samples/common/lab.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    log "installing Debian package: nginx (service start suppressed)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx >/dev/null || {
        [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
        die "apt-get install nginx failed"
    }
    [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
    return 0
}

# hl7 (PyPI, pinned) into the python chosen by lab_python ($PY)
HL7_PKG=hl7==0.4.5
lab_python_hl7() {
    local check='import sys, hl7; sys.exit(0 if hl7.__version__ == "0.4.5" else 1)'
    "$PY" -c "$check" 2>/dev/null && return 0
    log "installing python package: $HL7_PKG"
    "$PY" -m pip install -q --disable-pip-version-check "$HL7_PKG" >/dev/null
    "$PY" -c "$check" || die "could not install $HL7_PKG for $PY"
}
