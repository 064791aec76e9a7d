# shellcheck shell=bash
# Helpers for scripts/make-samples-mirror (sourced AFTER lab.sh and web_lab.sh, whose log/die/
# lab_*/weblab_* it uses). Three small labs, one after the other, each with the same servers in
# its "PACS" namespace: Orthanc (DICOM AE ORTHANC :4242; HTTP :8042 with the DICOMweb plugin and
# Basic auth rad1/admin), nginx (TLS :443 for pacs.example.test, a static file), the MLLP
# listener of hl7_mllp.py (:2575). Every namespace name starts with "pm-".

MIRROR_NS=pm
MIRROR_SNI=pacs.example.test

# mirror_host NS DEV IP/PREFIX MAC : address + fixed MAC on a device, up
mirror_host() {
    local ns=$1 dev=$2 cidr=$3 mac=$4
    ip -n "$ns" link set "$dev" address "$mac"
    ip -n "$ns" addr add "$cidr" dev "$dev"
    ip -n "$ns" link set "$dev" up
}

# mirror_neigh NS DEV IP MAC : permanent neighbour entry (no ARP in the captures)
mirror_neigh() {
    ip -n "$1" neigh replace "$3" lladdr "$4" dev "$2" nud permanent
}

# mirror_servers NS WORK STORESCP_IP : start Orthanc, nginx and the MLLP listener in NS, wait
# until they answer on NS's loopback. Sets ORTHANC_PID NGINX_PID MLLP_PID ORTHANC_VERSION
# DICOMWEB_VERSION and ADMIN_LO (curl as admin on the loopback: never on a captured link).
mirror_servers() {
    local ns=$1 work=$2 storescp_ip=$3
    local so=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
    rm -rf "$work/orthanc" "$work/nginx"
    mkdir -p "$work/orthanc/db" "$work/nginx/tmp"
    cat >"$work/orthanc/config.json" <<EOF
{
  "Name": "PACSTAP-MIRROR",
  "StorageDirectory": "$work/orthanc/db",
  "IndexDirectory": "$work/orthanc/db",
  "StorageCompression": false,
  "Plugins": [ "$so" ],
  "HttpServerEnabled": true,
  "HttpPort": 8042,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "rad1": "rad1-pass", "admin": "admin-pass" },
  "SslEnabled": false,
  "KeepAlive": true,
  "HttpCompressionEnabled": false,
  "DicomServerEnabled": true,
  "DicomAet": "ORTHANC",
  "DicomPort": 4242,
  "DicomCheckCalledAet": true,
  "StrictAetComparison": true,
  "DicomCheckModalityHost": false,
  "DicomAlwaysAllowEcho": true,
  "DicomAlwaysAllowStore": true,
  "DicomModalities": {
    "storescp": [ "STORESCP", "$storescp_ip", 11112 ],
    "workstation1": [ "WORKSTATION1", "$storescp_ip", 11113 ],
    "modality1": [ "MODALITY1", "$storescp_ip", 11114 ]
  },
  "DicomScuTimeout": 10,
  "DicomScpTimeout": 30,
  "DicomAssociationCloseDelay": 0,
  "SynchronousCMove": true,
  "MaximumPduLength": 16384,
  "TranscodeDicomProtocol": true,
  "OverwriteInstances": true,
  "SaveJobs": false,
  "ConcurrentJobs": 1,
  "DeidentifyLogs": false,
  "StableAge": 3600,
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado", "Ssl": false }
}
EOF
    lab_bg "$ns" Orthanc "$work/orthanc/config.json" 2>"$work/orthanc-$ns.log"
    ORTHANC_PID=$BG_PID
    cat >"$work/nginx/nginx.conf" <<EOF
# nginx in $ns: TLS termination for $MIRROR_SNI, one static file
user root;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    types { application/octet-stream bin; }
    default_type application/octet-stream;
    server {
        listen 443 ssl;
        server_name $MIRROR_SNI;
        ssl_certificate $work/tls/cert.pem;
        ssl_certificate_key $work/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location /static/ { alias $work/www/; }
    }
}
EOF
    ip netns exec "$ns" nginx -e "$work/nginx/error.log" -t -c "$work/nginx/nginx.conf" 2>"$work/nginx-t.log" \
        || die "nginx config: $(cat "$work/nginx-t.log")"
    lab_bg "$ns" nginx -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;'
    NGINX_PID=$BG_PID
    rm -f "$work/mllp.ready"
    lab_bg "$ns" "$PY" "$SAMPLES/common/hl7_mllp.py" serve --ready "$work/mllp.ready" 0.0.0.0 2575 2>"$work/mllp-$ns.log"
    MLLP_PID=$BG_PID
    ADMIN_LO=(ip netns exec "$ns" curl -sf -u admin:admin-pass)
    TRIES=150 lab_wait_for "${ADMIN_LO[@]}" http://127.0.0.1:8042/system \
        || die "Orthanc did not come up: $(tail -20 "$work/orthanc-$ns.log")"
    "${ADMIN_LO[@]}" http://127.0.0.1:8042/plugins | grep -q dicom-web || die "DICOMweb plugin not loaded"
    ORTHANC_VERSION=$("${ADMIN_LO[@]}" http://127.0.0.1:8042/system | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
    DICOMWEB_VERSION=$("${ADMIN_LO[@]}" http://127.0.0.1:8042/plugins/dicom-web | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
    TRIES=50 lab_wait_for ip netns exec "$ns" sh -c "ss -ltn | grep -q ':443 '" \
        || die "nginx did not listen: $(cat "$work/nginx/error.log")"
    TRIES=50 lab_wait_for test -s "$work/mllp.ready" || die "MLLP listener did not start: $(cat "$work/mllp-$ns.log")"
    log "servers up in $ns: Orthanc $ORTHANC_VERSION (DICOMweb $DICOMWEB_VERSION), nginx, MLLP"
}

# mirror_stop_servers : end the servers of mirror_servers (by pid) before the next lab
mirror_stop_servers() {
    local p
    for p in "$ORTHANC_PID" "$NGINX_PID" "$MLLP_PID"; do
        kill -0 "$p" 2>/dev/null || die "a server died before the end of its lab (pid $p); see $WORK"
    done
    lab_cleanup
}

# mirror_count WHAT : number of Orthanc resources (studies, instances) over the loopback
mirror_count() {
    "${ADMIN_LO[@]}" "http://127.0.0.1:8042/$1" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
