# Orthanc-like DICOMweb test server (HTTP/1.1 keep-alive) for capturing test vectors.
import base64, json, re, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ST = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.92402465.76095170"
USERS = {"rad1": "s3cr3t-pw"}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ORTHANC"
    sys_version = ""

    def authed(self):
        a = self.headers.get("Authorization", "")
        if a.startswith("Basic "):
            u, _, p = base64.b64decode(a[6:]).decode().partition(":")
            return USERS.get(u) == p
        return a.startswith("Bearer ")

    def deny(self):
        body = b"Unauthorized"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="Orthanc Secure Area"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)

    def do_GET(self):
        if not self.authed():
            return self.deny()
        if re.fullmatch(r"/dicom-web/studies\?.*", self.path):
            js = json.dumps([{"0020000D": {"vr": "UI", "Value": [ST]}}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(js) // 2
            for part in (js[:half], js[half:]):
                self.wfile.write(b"%x;part=1\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\nX-Checksum: 1\r\n\r\n")
            return
        if self.path.startswith("/dicom-web/studies/"):
            boundary = "4a6f7e0c-boundary"
            part = b"\x00" * 128 + b"DICM" + bytes(range(256)) * 60
            body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + part + f"\r\n--{boundary}--\r\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", f'multipart/related; type="application/dicom"; boundary={boundary}')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        if self.path == "/app/explorer.html":
            self.send_response(304)
            self.send_header("ETag", '"abc"')
            self.end_headers()
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def do_POST(self):
        if not self.authed():
            self.drain()
            return self.deny()
        self.drain()
        body = json.dumps({"00081190": {"vr": "UR", "Value": ["http://pacs/dicom-web/studies/" + ST]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if not self.authed():
            self.drain()
            return self.deny()
        self.drain()
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
