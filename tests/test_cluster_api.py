"""The live commands' cluster access (cluster_api, on the official kubernetes client) against a local TLS server that,
like a kube-apiserver, asks for client certificates and checks bearer tokens: every kind of kubeconfig user partners
have (exec credential plugin, client certificate from files or embedded, token), in-cluster service-account config,
the kubeconfig's proxy-url and pagination; and every way a kubeconfig or cluster is unusable is one KubeError line
that names the kubeconfig and the fix. The same kinds of user against the real API server: tests/e2e/
test_cluster_access.py."""
import base64
import datetime
import ipaddress
import json
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ncp import cluster_api
from ncp.cluster_api import KubeError, connect

PEM = serialization.Encoding.PEM
GOOD_TOKEN = "token-the-server-accepts"


def _issue(name: str, issuer=None, ca: bool = False, san: bool = False):
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
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _key_pem(key) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class _ApiServer(BaseHTTPRequestHandler):
    """Who the caller is (client certificate CN or the accepted token), as a two-page job list; 401 otherwise."""
    seen_paths: list = []

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        self.seen_paths.append(self.path)
        peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")  # the scheme is case-insensitive
        user = dict(item[0] for item in peer["subject"])["commonName"] if peer else \
            "token-user" if scheme.lower() == "bearer" and token == GOOD_TOKEN else None
        if user is None:
            return self._answer(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
        if url.path.rstrip("/") == "/version":
            return self._answer(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.4"})
        query = urllib.parse.parse_qs(url.query)
        if query.get("continue") == ["page-2"]:
            return self._answer(200, {"items": [{"page": 2, "user": user}], "metadata": {}})
        return self._answer(200, {"items": [{"page": 1, "user": user}], "metadata": {"continue": "page-2"}})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
    context.verify_mode = ssl.CERT_OPTIONAL  # as kube-apiserver with --client-ca-file: a certificate or a token
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield directory, f"https://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kubeconfig(path: Path, server: str, cluster: dict, user: dict, current: str = "c") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}},
                     {"name": "other", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def _exec_plugin(tmp_path: Path, body: str) -> Path:
    """A credential plugin as EKS/GKE/AKS ship them: a program printing an ExecCredential."""
    plugin = tmp_path / "credential-plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    plugin.chmod(0o755)
    return plugin


def _exec_user(command: Path) -> dict:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(command),
                     "interactiveMode": "Never"}}


def _ca(files) -> dict:
    return {"certificate-authority-data": _b64(files["ca.crt"])}


def test_exec_plugin_token_authenticates(server, tmp_path):
    _, url, files = server
    plugin = _exec_plugin(tmp_path, "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                                    f"'kind': 'ExecCredential', 'status': {{'token': '{GOOD_TOKEN}'}}}}))")
    kube = connect(str(_kubeconfig(tmp_path / "config", url, _ca(files), _exec_user(plugin))))
    assert kube.jobs("a=b") == [{"page": 1, "user": "token-user"}, {"page": 2, "user": "token-user"}], \
        "authenticated by the plugin's token, and both pages read"


def test_client_certificate_from_files_and_embedded(server, tmp_path):
    directory, url, files = server
    from_files = {"client-certificate": str(directory / "client.crt"), "client-key": str(directory / "client.key")}
    embedded = {"client-certificate-data": _b64(files["client.crt"]), "client-key-data": _b64(files["client.key"])}
    for name, user in (("files", from_files), ("embedded", embedded)):
        kube = connect(str(_kubeconfig(tmp_path / name, url, {"certificate-authority": str(directory / "ca.crt")},
                                       user)))
        assert kube.version()["minor"] == "35"
        assert {item["user"] for item in kube.jobs("a=b")} == {"alice"}


def test_embedded_key_lives_in_a_private_directory(server, tmp_path):
    _, url, files = server
    config = _kubeconfig(tmp_path / "config", url, _ca(files),
                         {"client-certificate-data": _b64(files["client.crt"]),
                          "client-key-data": _b64(files["client.key"])})
    key_file = Path(connect(str(config)).api_client.configuration.key_file)
    assert oct(key_file.parent.stat().st_mode & 0o777) == "0o700" and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert key_file.parent.name.startswith("ncp-kube-"), "not in the shared temp directory itself"


def test_in_cluster_service_account(server, tmp_path, monkeypatch):
    _, url, files = server
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(GOOD_TOKEN)
    (account / "ca.crt").write_bytes(files["ca.crt"])
    host, port = url.removeprefix("https://").split(":")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    kube = connect(service_account_dir=account)
    assert "in-cluster service account" in kube.where
    assert {item["user"] for item in kube.jobs("a=b")} == {"token-user"}


def test_context_is_chosen_and_kubeconfig_list_is_merged(server, tmp_path, monkeypatch):
    _, url, files = server
    config = _kubeconfig(tmp_path / "config", url, _ca(files), {"token": GOOD_TOKEN}, current="missing")
    assert connect(str(config), context="other").version()["major"] == "1"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{config}")
    assert connect(context="c").version()["major"] == "1"


def test_proxy_url_is_honoured(server, tmp_path):
    _, url, files = server
    config = _kubeconfig(tmp_path / "config", url, {**_ca(files), "proxy-url": "http://127.0.0.1:3128"},
                         {"token": GOOD_TOKEN})
    assert connect(str(config)).api_client.configuration.proxy == "http://127.0.0.1:3128"


def _refused(kubeconfig, **kwargs) -> str:
    with pytest.raises(KubeError) as raised:
        kube = connect(str(kubeconfig) if kubeconfig else None, **kwargs)
        kube.version()
    message = str(raised.value)
    assert "\n" not in message and "fix:" in message, f"one line with its fix: {message!r}"
    return message


def test_bad_kubeconfigs_are_one_clear_line(server, tmp_path, monkeypatch):
    _, url, files = server
    missing = tmp_path / "nope"
    assert f"kubeconfig {missing}: no such file" in _refused(missing)

    config = _kubeconfig(tmp_path / "config", url, _ca(files), {"token": GOOD_TOKEN})
    assert "no context 'prod' (it has: c, other)" in _refused(config, context="prod")

    not_found = _kubeconfig(tmp_path / "plugin-missing", url, _ca(files), _exec_user(tmp_path / "aws-iam-absent"))
    message = _refused(not_found)
    assert "the credential plugin" in message and "aws-iam-absent" in message and "No such file" in message

    failing = _exec_plugin(tmp_path, "print('token expired, run: login', file=sys.stderr); sys.exit(3)")
    message = _refused(_kubeconfig(tmp_path / "plugin-fails", url, _ca(files), _exec_user(failing)))
    assert "process returned 3" in message and "token expired, run: login" in message

    expired = _kubeconfig(tmp_path / "expired", url, _ca(files), {"token": "revoked"})
    assert "401 Unauthorized" in _refused(expired) and "expired or revoked" in _refused(expired)

    unreachable = _kubeconfig(tmp_path / "unreachable", "https://127.0.0.1:9", _ca(files), {"token": GOOD_TOKEN})
    assert "cannot reach https://127.0.0.1:9" in _refused(unreachable)

    for name, text in (("garbage", "- just\n- a list\n"), ("empty", ""), ("binary", "\udcff")):
        path = tmp_path / name
        path.write_bytes(text.encode(errors="surrogateescape"))
        assert f"kubeconfig {path}:" in _refused(path)


@pytest.mark.parametrize("argv_module", ["preflight", "evidence.run", "evidence.readiness_run"])
def test_live_commands_exit_2_on_a_bad_kubeconfig(argv_module, tmp_path, capsys, monkeypatch):
    module = __import__(f"ncp.{argv_module}.cli" if argv_module == "preflight" else f"ncp.{argv_module}",
                        fromlist=["main"])
    monkeypatch.setattr(module, "plan_from_stack_file", lambda stack: None)  # the kubeconfig fails first
    argv = ["--stack", "prod", "--kubeconfig", str(tmp_path / "absent")]
    if argv_module != "preflight":
        argv += ["--outputs", str(tmp_path / "out")]
    if argv_module == "evidence.run":
        argv += ["--cache-state", "cold"]
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: kubeconfig {tmp_path / 'absent'}: no such file; fix: pass --kubeconfig <file> or set "
                   "KUBECONFIG (inside a pod, leave both unset to use the pod's service account)"]


def test_the_private_directory_is_removed_at_exit(tmp_path):
    code = ("from ncp import cluster_api; import pathlib; d = cluster_api._private_dir(); "
            "pathlib.Path(d, 'key').write_text('k'); print(d)")
    import subprocess
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(cluster_api.__file__).parents[1])
    assert result.returncode == 0 and not Path(result.stdout.strip()).exists()
