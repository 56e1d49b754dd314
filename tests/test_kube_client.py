"""The live commands' API client (kube_client.Kube) against a local TLS server that, like a kube-apiserver, verifies
client certificates: a kubeconfig with embedded (`-data`) or file credentials authenticates, the client key is never
left on disk, and unusable credentials are a clear KubeError."""
import base64
import datetime
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube_client import Kube, KubeError

PEM = serialization.Encoding.PEM


def _issue(name: str, issuer=None, ca: bool = False, san: bool = False):
    """A key and a certificate for `name`, signed by issuer (key, cert) or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer = issuer if issuer else (key, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer.subject if signer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _key_pem(key) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"])["commonName"]
        body = json.dumps({"items": [{"user": subject}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = _issue("ncp-test-ca", ca=True)
    server_key, server_cert = _issue("apiserver", issuer=ca, san=True)
    client_key, client_cert = _issue("alice", issuer=ca)
    files = {"ca.crt": ca[1].public_bytes(PEM), "server.crt": server_cert.public_bytes(PEM),
             "server.key": _key_pem(server_key), "client.crt": client_cert.public_bytes(PEM),
             "client.key": _key_pem(client_key)}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    context.load_verify_locations(directory / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # as kube-apiserver with --client-ca-file
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    # The handshake runs in each request's thread (on its first read), so a refused client never blocks the server.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield directory, f"https://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


def _kubeconfig(path: Path, server: str, cluster: dict, user: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_embedded_client_certificate_authenticates_and_leaves_no_key_on_disk(pki, tmp_path, monkeypatch):
    directory, server, files = pki
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = _kubeconfig(tmp_path / "embedded", server, {"certificate-authority-data": _b64(files["ca.crt"])},
                         {"client-certificate-data": _b64(files["client.crt"]),
                          "client-key-data": _b64(files["client.key"])})
    kube = Kube(config)
    assert kube.jobs("a=b") == [{"user": "alice"}], "the server verified the client certificate"
    assert list(scratch.iterdir()) == [], "no PEM (the client key is a credential) is left in the temp directory"


def test_file_credentials_authenticate(pki, tmp_path):
    directory, server, _ = pki
    config = _kubeconfig(tmp_path / "files", server, {"certificate-authority": str(directory / "ca.crt")},
                         {"client-certificate": str(directory / "client.crt"),
                          "client-key": str(directory / "client.key")})
    assert Kube(config).jobs("a=b") == [{"user": "alice"}]


def test_without_the_client_certificate_the_server_refuses(pki, tmp_path):
    directory, server, files = pki
    config = _kubeconfig(tmp_path / "token", server, {"certificate-authority-data": _b64(files["ca.crt"])},
                         {"token": "t"})
    with pytest.raises(KubeError, match="cannot reach"):
        Kube(config).jobs("a=b")


@pytest.mark.parametrize("user, message", [
    ({}, "has neither a token nor a client certificate"),
    ({"client-certificate": "/nonexistent/client.crt", "client-key": "/nonexistent/client.key"},
     "its certificates cannot be used"),
    ({"client-certificate-data": _b64(b"not a certificate"), "client-key-data": _b64(b"x")},
     "its certificates cannot be used"),
])
def test_unusable_credentials_are_named(pki, tmp_path, user, message):
    _, server, files = pki
    config = _kubeconfig(tmp_path / "bad", server, {"certificate-authority-data": _b64(files["ca.crt"])}, user)
    with pytest.raises(KubeError, match=message) as raised:
        Kube(config)
    assert str(tmp_path / "bad") in str(raised.value), "the error names the kubeconfig"
