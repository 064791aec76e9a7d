# Sourced by scripts/demo and scripts/test: install what pacstap's build and tests need on a
# fresh Debian machine, only when missing (so repeated runs cost nothing).
# Usage: ensure_deps [tshark]
ensure_deps() {
    local want_tshark=${1:-}
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            echo "pacstap: cargo (Rust >= 1.88) is required; install it with rustup first." >&2
            exit 2
        fi
    fi
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    [ -e /usr/include/pcap/pcap.h ] || missing+=(libpcap-dev)
    if [ -n "$want_tshark" ]; then
        # The test suite's oracles and tools: tshark (cross-checks), tcpreplay + iproute2
        # (the live-capture test in a network namespace).
        command -v tshark >/dev/null 2>&1 || missing+=(tshark)
        command -v tcpreplay >/dev/null 2>&1 || missing+=(tcpreplay)
        command -v ip >/dev/null 2>&1 || missing+=(iproute2)
        # tests/report.rs renders the HTML report in headless Chromium.
        command -v chromium >/dev/null 2>&1 || missing+=(chromium)
        # tests/deploy_rules.rs checks and unit-tests deploy/prometheus rules with promtool.
        command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
        # scripts/test type-checks the fuzz targets: libfuzzer-sys compiles libFuzzer (C++).
        command -v c++ >/dev/null 2>&1 || missing+=(g++)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "pacstap: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
            [ -n "$want_tshark" ] && return 0
            exit 2
        fi
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # tshark asks whether non-root users may capture; preseed "no" so it never prompts.
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
