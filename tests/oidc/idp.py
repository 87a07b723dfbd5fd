"""An OpenID provider stand-in for gatehouse's tests, shaped like Keycloak.

Serves over HTTPS (a CA and server certificate made at start, the CA's PEM written to --ca-out):
  /realms/bank/.well-known/openid-configuration and /realms/bank/protocol/openid-connect/certs.
A plain-HTTP control port on loopback lets the test mint tokens, rotate and remove keys, change how
the key set is served (extra raw keys, the discovery document's jwks_uri), and read fetch counts. A third port is the "attacker" server that tokens point
at through jku/x5u headers; it counts every request it gets.

Prints one JSON line with the three ports once everything listens.
"""

import argparse
import base64
import datetime
import json
import ssl
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwk, jwt

REALM = "/realms/bank"
LOCK = threading.Lock()
STATE = {
    "keys": {},  # kid -> (alg, JWK with private part)
    "published": [],  # kids in the served set, in order
    "mode": "ok",  # ok | down | oversized | malformed
    "counts": {"discovery": 0, "jwks": 0, "attacker": 0},
    "jwks_uri": None,  # overrides the discovery document's jwks_uri
    "extra": [],  # raw JWKs served after the published keys
}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg, kid=None, size=2048):
    if alg.startswith("RS") or alg.startswith("PS"):
        key = jwk.JWK.generate(kty="RSA", size=size)
    elif alg == "ES256":
        key = jwk.JWK.generate(kty="EC", crv="P-256")
    elif alg == "ES384":
        key = jwk.JWK.generate(kty="EC", crv="P-384")
    elif alg == "EdDSA":
        key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    else:
        raise ValueError(alg)
    kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    with LOCK:
        STATE["keys"][kid] = (alg, key)
        STATE["published"].append(kid)
    return kid


def public_jwk(kid):
    alg, key = STATE["keys"][kid]
    public = json.loads(key.export_public())
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    return public


def jwks_body():
    with LOCK:
        keys = [public_jwk(k) for k in STATE["published"]] + STATE["extra"]
        return json.dumps({"keys": keys}).encode()


def keycloak_claims(issuer, overrides):
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": "bank-api",
        "azp": "bank-web",
        "sub": "f1c3a6e2-0000-4000-8000-000000000001",
        "preferred_username": "bob",
        "realm_access": {"roles": ["bank_teller", "offline_access"]},
        "resource_access": {"bank-api": {"roles": ["account_viewer"]}},
        "groups": ["/tellers"],
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def mint(issuer, request):
    claims = keycloak_claims(issuer, request.get("claims", {}))
    extra_header = request.get("header", {})
    kind = request.get("sign", "key")
    if kind == "none":
        header = {"alg": "none", "typ": "JWT", **extra_header}
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."
    if kind in ("hs256-pem", "hs256-jwk"):
        kid = request.get("kid") or STATE["published"][0]
        _, key = STATE["keys"][kid]
        if kind == "hs256-pem":
            secret = key.export_to_pem(private_key=False, password=None)
        else:
            secret = key.export_public().encode()
        hmac_key = jwk.JWK(kty="oct", k=b64(secret))
        header = {"alg": "HS256", "typ": "JWT", "kid": kid, **extra_header}
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(hmac_key)
        return token.serialize()
    if kind == "embedded":
        # Signed with a key of the caller's own, offered in the `jwk` header under a real kid.
        own = jwk.JWK.generate(kty="RSA", size=2048)
        kid = request.get("kid") or STATE["published"][0]
        public = json.loads(own.export_public())
        header = {"alg": "RS256", "typ": "JWT", "kid": kid, "jwk": public, **extra_header}
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(own)
        return token.serialize()
    kid = request["kid"]
    alg, key = STATE["keys"][kid]
    header = {"alg": alg, "typ": "JWT", "kid": kid, **extra_header}
    if request.get("omit_kid"):
        del header["kid"]
    if "header_kid" in request:
        header["kid"] = request["header_kid"]
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    return token.serialize()


class Provider(BaseHTTPRequestHandler):
    issuer = ""

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        mode = STATE["mode"]
        if self.path == REALM + "/.well-known/openid-configuration":
            with LOCK:
                STATE["counts"]["discovery"] += 1
            if mode == "down":
                return self.send(503, b"{}")
            doc = {
                "issuer": self.issuer,
                "jwks_uri": STATE["jwks_uri"] or self.issuer + "/protocol/openid-connect/certs",
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            }
            return self.send(200, json.dumps(doc).encode())
        if self.path == REALM + "/protocol/openid-connect/certs":
            with LOCK:
                STATE["counts"]["jwks"] += 1
            if mode == "down":
                return self.send(503, b"{}")
            if mode == "oversized":
                # Streamed without a length, so only a reader that counts can notice.
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                chunk = b" " * 65536
                try:
                    for _ in range(16):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                self.close_connection = True
                return None
            if mode == "malformed":
                return self.send(200, b'{"keys": "not a list"')
            return self.send(200, jwks_body())
        return self.send(404, b"{}")


class Control(BaseHTTPRequestHandler):
    issuer = ""

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/mint":
            answer = {"token": mint(self.issuer, request)}
        elif self.path == "/rotate":
            answer = {"kid": new_key(request.get("alg", "RS256"), size=request.get("size", 2048))}
        elif self.path == "/discovery":
            STATE["jwks_uri"] = request["jwks_uri"]
            answer = {}
        elif self.path == "/extra":
            # Raw JWKs, and copies of published keys under another kid.
            with LOCK:
                extra = list(request.get("keys", []))
                for copy in request.get("copies", []):
                    extra.append({**public_jwk(copy["from"]), "kid": copy["kid"]})
                STATE["extra"] = extra
            answer = {}
        elif self.path == "/remove":
            with LOCK:
                STATE["published"].remove(request["kid"])
            answer = {}
        elif self.path == "/mode":
            STATE["mode"] = request["mode"]
            answer = {}
        elif self.path == "/counts":
            with LOCK:
                answer = dict(STATE["counts"])
        else:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Attacker(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        with LOCK:
            STATE["counts"]["attacker"] += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"keys": []}')


def certificates(ca_out):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatehouse test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    with open(ca_out, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    chain = tempfile.NamedTemporaryFile(suffix=".pem", delete=False)
    chain.write(cert.public_bytes(serialization.Encoding.PEM))
    chain.write(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain.close()
    return chain.name


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca-out", required=True)
    args = parser.parse_args()
    for alg, kid in (("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1")):
        new_key(alg, kid)
    chain = certificates(args.ca_out)
    https = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    issuer = f"https://127.0.0.1:{https.server_address[1]}{REALM}"
    Provider.issuer = issuer
    Control.issuer = issuer
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    for server in (https, control, attacker):
        serve(server)
    print(
        json.dumps(
            {
                "issuer": issuer,
                "control": control.server_address[1],
                "attacker": attacker.server_address[1],
            }
        ),
        flush=True,
    )
    # Ends with the test: its stdin closes when the test's child handle is dropped or killed.
    sys.stdin.read()


if __name__ == "__main__":
    main()
