# shellcheck shell=bash
# Helpers for scripts/make-samples-web (sourced AFTER lab.sh, whose log/die/lab_* it uses).
# The lab is the one of scripts/make-samples: same namespace names, addresses and MACs
# (pt-sw with bridge br0, pt-pacs 10.20.0.10, pt-mod 10.20.0.30; pt-ws is not needed
# here), MTU 1500, every offload off, IPv6 off, permanent neighbour entries.

WEB_NET=10.20.0
PACS_IP=$WEB_NET.10
MOD_IP=$WEB_NET.30

# weblab_build: pt-sw (bridge br0) + pt-pacs + pt-mod, ports pacs0 / mod0 on br0
weblab_build() {
    local h o
    declare -gA WL_IP=([pacs]=$PACS_IP [mod]=$MOD_IP)
    declare -gA WL_MAC=([pacs]=02:00:0a:14:00:0a [mod]=02:00:0a:14:00:1e)
    lab_ns_add pt-sw
    ip -n pt-sw link add br0 type bridge stp_state 0 forward_delay 0
    ip -n pt-sw link set br0 up
    for h in pacs mod; do
        lab_ns_add "pt-$h"
        lab_veth "pt-$h" eth0 pt-sw "${h}0" 1500
        ip -n "pt-$h" link set eth0 address "${WL_MAC[$h]}"
        ip -n "pt-$h" addr add "${WL_IP[$h]}/24" dev eth0
        ip -n "pt-$h" link set eth0 up
        ip -n pt-sw link set "${h}0" master br0
        ip -n pt-sw link set "${h}0" up
    done
    lab_offloads_off pt-sw br0
    for h in pacs mod; do
        for o in pacs mod; do
            [[ $h == "$o" ]] && continue
            ip -n "pt-$h" neigh replace "${WL_IP[$o]}" lladdr "${WL_MAC[$o]}" dev eth0 nud permanent
        done
    done
}

# nginx from Debian, without letting the package start a system-wide nginx on :80 in
# the root namespace (a temporary policy-rc.d that forbids service starts, removed
# again unless one was there before). The lab runs its own nginx in pt-pacs.
weblab_install_nginx() {
    [[ -x /usr/sbin/nginx ]] && return 0
    local own_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, scripts/make-samples-web\nexit 101\n' >/usr/sbin/policy-rc.d
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
weblab_python_hl7() {
    local check='import sys, hl7; sys.exit(0 if hl7.__version__ == "0.4.5" else 1)'
    "$PY" -c "$check" 2>/dev/null && return 0
    log "installing python package: $HL7_PKG"
    "$PY" -m pip install -q --disable-pip-version-check "$HL7_PKG" >/dev/null
    "$PY" -c "$check" || die "could not install $HL7_PKG for $PY"
}
