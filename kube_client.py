"""The few Kubernetes API calls an acceptance or readiness run needs (Jobs, their pods' logs, a per-run Secret), over
HTTPS with the credentials of a kubeconfig's current context: bearer token or client certificate. Standard library
only."""
import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

import yaml


class KubeError(Exception):
    """The API server refused a request or the kubeconfig is unusable; the message says which and why."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


def _pem(entry: dict, key: str) -> Optional[bytes]:
    """A kubeconfig '<key>-data' value (base64 PEM) or the file '<key>' names, as PEM bytes; None when neither."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    return Path(entry[key]).expanduser().read_bytes() if entry.get(key) else None


def _load_client_certificate(context: ssl.SSLContext, user: dict) -> None:
    """ssl reads a certificate chain from files only: the PEMs go to a private directory that is removed as soon as
    they are loaded (never left behind: the key is a credential)."""
    with tempfile.TemporaryDirectory(prefix="ncp-kube-") as directory:
        paths = []
        for key in ("client-certificate", "client-key"):
            data = _pem(user, key)
            if data is None:
                raise KubeError(f"the kubeconfig user has a client certificate but no {key}")
            path = Path(directory) / f"{key}.pem"
            path.write_bytes(data)
            path.chmod(0o600)
            paths.append(str(path))
        context.load_cert_chain(*paths)


class Kube:
    def __init__(self, kubeconfig: Path):
        try:
            config = yaml.safe_load(Path(kubeconfig).read_text())
            context_name = config.get("current-context") or config["contexts"][0]["name"]
            context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
            cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
            user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        except (OSError, yaml.YAMLError, KeyError, IndexError, StopIteration, TypeError) as error:
            raise KubeError(f"{kubeconfig}: not a usable kubeconfig ({type(error).__name__}: {error})") from None
        self.server = cluster["server"].rstrip("/")
        token = user.get("token")
        certificate = bool(user.get("client-certificate") or user.get("client-certificate-data"))
        if not token and not certificate:
            raise KubeError(f"{kubeconfig}: user {context['user']} has neither a token nor a client certificate")
        try:
            authority = _pem(cluster, "certificate-authority")
            self.context = ssl.create_default_context(cadata=authority.decode() if authority else None)
            if not token:
                _load_client_certificate(self.context, user)
        except (OSError, ssl.SSLError, ValueError) as error:
            raise KubeError(f"{kubeconfig}: its certificates cannot be used ({type(error).__name__}: {error})"
                            ) from None
        self.headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def call(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        return json.loads(self._send(method, path, body) or b"{}")

    def _send(self, method: str, path: str, body: Optional[dict] = None) -> bytes:
        request = urllib.request.Request(f"{self.server}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise KubeError(f"{method} {path}: HTTP {error.code}: {error.read()[:400].decode(errors='replace')}",
                            error.code) from None
        except (urllib.error.URLError, OSError) as error:
            # Under TLS 1.3 a server that refuses the client's certificate says so after the handshake, so the
            # alert surfaces as an ssl.SSLError while the response is read, not as a URLError when connecting.
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise KubeError(f"{method} {path}: cannot reach {self.server} ({reason})") from None

    def get(self, path: str) -> Optional[dict]:
        """The object at path, or None when the server answers 404 (e.g. an API group it does not serve)."""
        try:
            return self.call("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def jobs(self, selector: str) -> list[dict]:
        return self.call("GET", f"/apis/batch/v1/jobs?labelSelector={urllib.parse.quote(selector)}")["items"]

    def create_job(self, namespace: str, job: dict) -> dict:
        return self.call("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job)

    def job(self, namespace: str, name: str) -> dict:
        return self.call("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def pods(self, namespace: str, selector: str) -> list[dict]:
        return self.call("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={urllib.parse.quote(selector)}"
                         )["items"]

    def pod_log(self, namespace: str, name: str, container: str) -> str:
        query = urllib.parse.urlencode({"container": container})
        return self._send("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log?{query}").decode(errors="replace")

    def replace_secret(self, namespace: str, secret: dict) -> dict:
        """Creates the Secret, replacing one of the same name (a previous run's, left by an interrupted run)."""
        self.delete(f"/api/v1/namespaces/{namespace}/secrets/{secret['metadata']['name']}")
        return self.call("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)

    def delete(self, path: str) -> None:
        """Deletes the object at path; one already gone is fine."""
        try:
            self.call("DELETE", path)
        except KubeError as error:
            if error.status != 404:
                raise
