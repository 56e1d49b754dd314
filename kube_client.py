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


def _data_file(entry: dict, key: str) -> Optional[str]:
    """A kubeconfig '<key>-data' value written to a private temp file, or the '<key>' path itself."""
    if entry.get(f"{key}-data"):
        handle = tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False)
        handle.write(base64.b64decode(entry[f"{key}-data"]))
        handle.close()
        return handle.name
    return entry.get(key)


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
        self.context = ssl.create_default_context(cafile=_data_file(cluster, "certificate-authority"))
        self.headers = {"Accept": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        elif user.get("client-certificate") or user.get("client-certificate-data"):
            certificate = _data_file(user, "client-certificate")
            assert certificate is not None, "the branch condition: one of the two keys is set"
            self.context.load_cert_chain(certificate, _data_file(user, "client-key"))
        else:
            raise KubeError(f"{kubeconfig}: user {context['user']} has neither a token nor a client certificate")

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
        except urllib.error.URLError as error:
            raise KubeError(f"{method} {path}: cannot reach {self.server} ({error.reason})") from None

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
