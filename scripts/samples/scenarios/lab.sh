# shellcheck shell=bash
# Namespace lab for scripts/make-scenarios (sourced AFTER lab.sh, whose log/die/lab_*/cap_* it uses).
#
# Same addressing as the lab of scripts/make-samples (10.20.0.0/24, PACS 10.20.0.10, storescp
# 10.20.0.20, clients 10.20.0.30, MTU 1500, every offload off, IPv6 off, fixed MACs and permanent
# neighbour entries, tap = bridge port pacs0), but in namespaces with their OWN names (prefix
# `pts-`), so a concurrent run of make-samples / make-samples-web (prefix `pt-`) cannot delete
# them, and with three more hosts:
#   pts-mod2 10.20.0.31   a second client machine (the "new device")
#   pts-rtr  10.20.0.50   the routing engine (service account AE ROUTER1)
#   pts-ext  198.51.100.7 an "external" receiver (TEST-NET-2, RFC 5737) plugged into the SAME
#            bridge: pts-pacs reaches it through an on-link /32 route, pts-ext reaches the lab
#            through an on-link route to 10.20.0.0/24. Nothing is routed anywhere else: no
#            namespace has a default route or a link outside pts-sw.
#   pts-exta 203.0.113.10  an outside client (TEST-NET-3): a teleradiologist's home office,
#            country "XA" in the scenarios' geoip.csv
#   pts-extb 198.51.100.23 another outside client (TEST-NET-2): country "XB" in geoip.csv
#            Both are wired like pts-ext: same bridge, on-link routes, they talk to the PACS only.

SC_NS=pts
SC_HOSTS=(pacs ws mod mod2 rtr ext exta extb)
# hosts outside the lab's 10.20.0.0/24: on-link routes both ways, and they talk to the PACS only
SC_OUTSIDE=(ext exta extb)
declare -gA SC_IP=([pacs]=10.20.0.10 [ws]=10.20.0.20 [mod]=10.20.0.30 [mod2]=10.20.0.31
    [rtr]=10.20.0.50 [ext]=198.51.100.7 [exta]=203.0.113.10 [extb]=198.51.100.23)
declare -gA SC_MAC=([pacs]=02:00:0a:14:00:0a [ws]=02:00:0a:14:00:14 [mod]=02:00:0a:14:00:1e
    [mod2]=02:00:0a:14:00:1f [rtr]=02:00:0a:14:00:32 [ext]=02:00:c6:33:64:07
    [exta]=02:00:cb:00:71:0a [extb]=02:00:c6:33:64:17)

# scen_outside HOST: true for the hosts outside 10.20.0.0/24
scen_outside() {
    local o
    for o in "${SC_OUTSIDE[@]}"; do [[ $1 == "$o" ]] && return 0; done
    return 1
}

# scen_no_neigh H O : the external hosts only talk to the PACS (no neighbour entry otherwise)
scen_no_neigh() {
    { scen_outside "$1" && [[ $2 != pacs ]]; } || { scen_outside "$2" && [[ $1 != pacs ]]; }
}

# scen_lab_build: pts-sw (bridge br0) + one namespace per host, port <host>0 on br0
scen_lab_build() {
    local o
    LAB_NO_NEIGH=scen_no_neigh lab_bridge "$SC_NS-sw" "$SC_NS" SC_IP SC_MAC "${SC_HOSTS[@]}"
    # on-link routes between the lab /24 and each external address (same L2 segment)
    for o in "${SC_OUTSIDE[@]}"; do
        ip -n "$SC_NS-pacs" route add "${SC_IP[$o]}/32" dev eth0 scope link
        ip -n "$SC_NS-$o" route add 10.20.0.0/24 dev eth0 scope link
        ip netns exec "$SC_NS-$o" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
    done
}
