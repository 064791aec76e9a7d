# shellcheck shell=bash
# The lab of scripts/samples/web/make (sourced AFTER common/lab.sh). It is the lab of
# scripts/samples/dicom/make: same namespace names, addresses and MACs (pt-sw with bridge br0,
# pt-pacs 10.20.0.10, pt-mod 10.20.0.30; pt-ws is not needed here), built by lab_bridge.

WEB_NET=10.20.0
PACS_IP=$WEB_NET.10
MOD_IP=$WEB_NET.30

# weblab_build: pt-sw (bridge br0) + pt-pacs + pt-mod, ports pacs0 / mod0 on br0
weblab_build() {
    declare -gA WL_IP=([pacs]=$PACS_IP [mod]=$MOD_IP)
    declare -gA WL_MAC=([pacs]=02:00:0a:14:00:0a [mod]=02:00:0a:14:00:1e)
    lab_bridge pt-sw pt WL_IP WL_MAC pacs mod
}
