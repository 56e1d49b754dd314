"""A minimal client for the e2e control plane's API server: enough to install CRDs and read objects back."""
import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import yaml


class KubeApi:
    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        self.token = user["token"]
        if "certificate-authority-data" in cluster:
            self.context = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        else:
            self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])

    def request(self, method: str, path: str, body: Optional[dict] = None, content_type: str = "application/json"):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.server}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            if error.code == 404 and method == "GET":
                return None
            raise AssertionError(f"{method} {path}: {error.code} {error.read()[:500]!r}") from None

    def get(self, path: str) -> Optional[dict]:
        return self.request("GET", path)

    def create(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)

    def patch(self, path: str, body: dict) -> dict:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def try_create(self, path: str, body: dict) -> tuple[int, str]:
        """POST expecting it may be refused: (HTTP status, the API server's message)."""
        request = urllib.request.Request(f"{self.server}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                return response.status, ""
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}").get("message", "")

    def apply_crd(self, crd: dict) -> None:
        """Server-side apply of a CustomResourceDefinition, then wait until it is established."""
        name = crd["metadata"]["name"]
        self.request("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                              "?fieldManager=ncp-e2e&force=true", crd, "application/apply-patch+yaml")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = (self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}).get(
                "status", {})
            if any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
                return
            time.sleep(0.5)
        raise AssertionError(f"CRD {name} not established")

    def wait_gone(self, path: str, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get(path) is None:
                return True
            time.sleep(1)
        return False


def only_version(crd: dict, version: str) -> dict:
    """The CRD with one served, stored version and no conversion webhook (no operator runs in the e2e cluster)."""
    versions = [dict(v, served=True, storage=True) for v in crd["spec"]["versions"] if v["name"] == version]
    if not versions:
        raise AssertionError(f"{crd['metadata']['name']} has no version {version}")
    spec = {k: v for k, v in crd["spec"].items() if k != "conversion"}
    return {**crd, "spec": {**spec, "versions": versions}}


def without_descriptions(schema):
    """CRD schemas without their prose: the DynamoGraphDeployment CRD is over etcd's 1.5 MiB request limit with it."""
    if isinstance(schema, dict):
        return {k: without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [without_descriptions(v) for v in schema]
    return schema
