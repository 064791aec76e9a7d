#!/usr/bin/env python3
"""Small deterministic inputs for scripts/make-samples-web (stdlib only).

  web_helpers.py stow-body OUT BOUNDARY FILE...   multipart/related body for STOW-RS
        (one application/dicom part per DICOM file, CRLF line ends, final --BOUNDARY--)
  web_helpers.py blob OUT SIZE                    SIZE deterministic bytes (the file that nginx serves)
  web_helpers.py jwt                              a synthetic JWT-shaped bearer token (NOT signed by
        anything: header.payload.signature, base64url, payload sub/preferred_username rad2)
"""
import base64
import hashlib
import json
import sys


def stow_body(out, boundary, files):
    with open(out, "wb") as f:
        for p in files:
            f.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            with open(p, "rb") as src:
                f.write(src.read())
            f.write(b"\r\n")
        f.write(f"--{boundary}--\r\n".encode())


def blob(out, size):
    head = b"PACSTAP SYNTHETIC FILE - served by nginx in the pacstap lab, no real content\n"
    data = bytearray(head)
    block = hashlib.sha256(b"pacstap-tls-blob").digest()
    while len(data) < size:
        block = hashlib.sha256(block).digest()
        data += block
    with open(out, "wb") as f:
        f.write(bytes(data[:size]))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt():
    header = {"alg": "RS256", "typ": "JWT", "kid": "pacstap-synthetic"}
    payload = {"iss": "https://idp.example.test/realms/pacs", "sub": "rad2", "preferred_username": "rad2",
               "aud": "orthanc", "iat": 1704182400, "exp": 1704186000}
    sig = hashlib.sha256(b"pacstap synthetic signature, verifies nothing").digest() * 8  # 256 bytes like RS256
    enc = lambda o: b64url(json.dumps(o, separators=(",", ":")).encode())
    return f"{enc(header)}.{enc(payload)}.{b64url(sig)}"


def main(argv):
    if argv[:1] == ["stow-body"] and len(argv) >= 4:
        stow_body(argv[1], argv[2], argv[3:])
    elif argv[:1] == ["blob"] and len(argv) == 3:
        blob(argv[1], int(argv[2]))
    elif argv == ["jwt"]:
        print(jwt())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
