"""The live commands' access to a cluster (preflight, evidence.run, evidence.readiness_run), through the official
Kubernetes Python client (`kubernetes`, pinned in pyproject.toml to the release line of the Kubernetes version the
matrix supports). The client brings what partners' kubeconfigs need: contexts, exec credential plugins (EKS, GKE,
AKS kubelogin, OIDC helpers) and their token refresh, the OIDC auth provider, client certificates, CA bundles,
in-cluster service-account config, HTTPS_PROXY/NO_PROXY. This module adds what the client leaves to its callers:
the kubeconfig's `proxy-url`, pagination, a watch for waiting, and one clear line for every way a kubeconfig or a
cluster can be unusable (KubeError) instead of a traceback or a late 401.

Objects travel as the API server's JSON (dicts), exactly as `kubectl get -o json` shows them."""
import atexit
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import urllib3
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException
from ncp.cli_exit import BadInput

# Where a pod finds its service account's token and the cluster CA (kubernetes.config.incluster_config).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PAGE_SIZE = 500
REQUEST_TIMEOUT = 60  # seconds per API request
CONNECT_RETRIES = 2  # the client's urllib3 default (3, with backoff) makes an unreachable server slow to report


class KubeError(BadInput):
    """The cluster cannot be used: a bad kubeconfig or credentials, an unreachable or refusing API server. The message
    is one line naming the source and the fix. `status` is the HTTP status where the API server answered."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


@contextmanager
def _config_errors() -> Iterator[list[str]]:
    """The client logs (and swallows) a failing exec plugin or auth provider and goes on without credentials; collect
    those messages so that the failure is reported where it happens, not as a 401 later."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _private_dir() -> str:
    """Embedded client certificates and keys must be files for TLS: they go to a private directory removed at exit
    (the client's own temp files would be left in /tmp until then, beside other users' files)."""
    directory = tempfile.mkdtemp(prefix="ncp-kube-")
    atexit.register(shutil.rmtree, directory, True)
    return directory


def _kubeconfig_sources(kubeconfig: Optional[str]) -> str:
    if kubeconfig:
        return kubeconfig
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def _load_kubeconfig(source: str, context: Optional[str], configuration: client.Configuration) -> None:
    first = source.split(os.pathsep)[0]
    if not any(Path(p).expanduser().is_file() for p in source.split(os.pathsep) if p):
        raise KubeError(f"kubeconfig {first}: no such file; fix: pass --kubeconfig <file> or set KUBECONFIG "
                        "(inside a pod, leave both unset to use the pod's service account)")
    try:
        loader = kube_config._get_kube_config_loader(  # the loader of load_kube_config, kept for its cluster entry
            filename=source, active_context=context, persist_config=False, temp_file_path=_private_dir())
        with _config_errors() as errors:
            loader.load_and_set(configuration)
    except ConfigException as error:
        raise KubeError(f"kubeconfig {first}: {_config_problem(str(error), source, context)}") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError, AttributeError, TypeError, KeyError, ValueError) as error:
        raise KubeError(f"kubeconfig {first}: not a usable kubeconfig ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}); fix: point --kubeconfig at the file "
                        "your cluster provider wrote (`kubectl config view` shows what it holds)") from None
    user = loader._user.value if loader._user else {}
    plugin = "exec" in user or "auth-provider" in user
    if plugin and not configuration.api_key and not configuration.cert_file:
        command = (user.get("exec") or {}).get("command") or (user.get("auth-provider") or {}).get("name", "?")
        reason = "; ".join(errors) or "it returned no credentials"
        raise KubeError(f"kubeconfig {first}: the credential plugin {command!r} of context "
                        f"{loader.current_context['name']!r} failed: {reason}; fix: install it or log in again with "
                        "your provider's CLI (e.g. `aws eks update-kubeconfig`, `gcloud container clusters "
                        "get-credentials`, `kubelogin convert-kubeconfig`)")
    proxy = loader._cluster.value.get("proxy-url") if loader._cluster else None
    if proxy:  # a kubeconfig field the client does not read (kube_config.py of kubernetes 35.0.0 has no proxy-url)
        configuration.proxy = proxy


def _config_problem(message: str, source: str, context: Optional[str]) -> str:
    if context and "Expected object with name" in message:
        try:
            contexts = [c["name"] for c in kube_config.list_kube_config_contexts(source)[0]]
        except (ConfigException, KeyError, TypeError):
            contexts = []
        return f"no context {context!r} (it has: {', '.join(contexts) or 'none'}); fix: pass --context with one of them"
    if "current-context" in message or "Expected key contexts" in message:
        return (f"no usable current context ({message}); fix: `kubectl config use-context <name>` or pass --context")
    return f"not a usable kubeconfig ({message}); fix: regenerate it with your cluster provider's CLI"


def _in_cluster(service_account_dir: Path, configuration: client.Configuration) -> None:
    try:
        incluster_config.InClusterConfigLoader(token_filename=str(service_account_dir / "token"),
                                               cert_filename=str(service_account_dir / "ca.crt")
                                               ).load_and_set(configuration)
    except ConfigException as error:
        raise KubeError(f"in-cluster config ({service_account_dir}): {error}; fix: run in a pod with a mounted "
                        "service account token, or pass --kubeconfig") from None


def connect(kubeconfig: Optional[str] = None, context: Optional[str] = None,
            service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> "Kube":
    """A client for the kubeconfig (file, or KUBECONFIG's list, or ~/.kube/config) and context (default: its current
    one); with neither a kubeconfig nor a default file, inside a pod, the pod's service account."""
    configuration = client.Configuration()
    source = _kubeconfig_sources(kubeconfig)
    in_pod = os.environ.get(incluster_config.SERVICE_HOST_ENV_NAME) and (service_account_dir / "token").is_file()
    if not kubeconfig and not os.environ.get("KUBECONFIG") and not Path(source).is_file() and in_pod:
        _in_cluster(service_account_dir, configuration)
        where = f"the in-cluster service account ({service_account_dir})"
    else:
        _load_kubeconfig(source, context, configuration)
        where = f"kubeconfig {source.split(os.pathsep)[0]}"
    configuration.retries = CONNECT_RETRIES
    return Kube(client.ApiClient(configuration), where)


class Kube:
    """The API calls the live commands make. Every failure is a KubeError with one line saying what to fix."""

    def __init__(self, api_client: client.ApiClient, where: str):
        self.api_client, self.where = api_client, where
        self.server = api_client.configuration.host
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The API server's JSON answer to one call (raw bytes for pod logs)."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as error:
            raise self._refused(what, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise KubeError(f"{what}: cannot reach {self.server} ({reason}); fix: check the server address of "
                            f"{self.where}, the network or VPN, and the proxy (HTTPS_PROXY, the kubeconfig's "
                            "proxy-url)") from None
        return response.data

    def _refused(self, what: str, error: ApiException) -> KubeError:
        try:
            message = json.loads(error.body or "{}").get("message") or error.reason
        except (ValueError, AttributeError):
            message = error.reason
        if error.status == 401:
            return KubeError(f"{what}: the API server {self.server} refused the credentials of {self.where} "
                             f"(401 Unauthorized: {message}): expired or revoked; fix: refresh them (log in again "
                             "with your provider's CLI, or a new token)", 401)
        return KubeError(f"{what}: HTTP {error.status}: {message}", error.status)

    def _json(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        return json.loads(self._call(what, method, *args, **kwargs) or b"{}")

    def _list(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict]:
        """Every item of a list call, page by page."""
        items: list[dict] = []
        token = None
        while True:
            page = self._json(what, method, *args, limit=PAGE_SIZE, **({"_continue": token} if token else {}),
                              **kwargs)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    # --- reads ---
    def version(self) -> dict:
        return self._json("GET /version", client.VersionApi(self.api_client).get_code)

    def served_kinds(self, group_version: str) -> set[str]:
        """The kinds an API group version serves (empty when the cluster does not serve it)."""
        path = f"/apis/{group_version}"
        try:
            data = self._call(f"GET {path}", self.api_client.call_api, path, "GET", auth_settings=["BearerToken"],
                              _return_http_data_only=True)
        except KubeError as error:
            if error.status == 404:
                return set()
            raise
        return {resource["kind"] for resource in json.loads(data).get("resources", [])}

    def nodes(self) -> list[dict]:
        return self._list("GET nodes", self.core.list_node)

    def node(self, name: str) -> dict:
        return self._json(f"GET node {name}", self.core.read_node, name)

    def pods_on_node(self, node: str) -> list[dict]:
        return self._list(f"GET pods on node {node}", self.core.list_pod_for_all_namespaces,
                          field_selector=f"spec.nodeName={node}")

    def storage_class_names(self) -> set[str]:
        storage = client.StorageV1Api(self.api_client)
        return {item["metadata"]["name"] for item in self._list("GET storageclasses", storage.list_storage_class)}

    def jobs(self, selector: str) -> list[dict]:
        return self._list(f"GET jobs ({selector})", self.batch.list_job_for_all_namespaces, label_selector=selector)

    def network_policies(self, namespace: str) -> list[dict]:
        return self._list(f"GET networkpolicies {namespace}", self.networking.list_namespaced_network_policy,
                          namespace)

    def validating_webhook_configuration(self, name: str) -> Optional[dict]:
        """The ValidatingWebhookConfiguration of that name; None where the cluster has none."""
        api = client.AdmissionregistrationV1Api(self.api_client)
        try:
            return self._json(f"GET validatingwebhookconfiguration {name}",
                              api.read_validating_webhook_configuration, name)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def custom_objects(self, group: str, version: str, plural: str) -> list[dict]:
        """Every object of a custom resource, cluster-wide."""
        return self._list(f"GET {plural}.{group}", self.custom.list_cluster_custom_object, group, version, plural)

    def job(self, namespace: str, name: str) -> dict:
        return self._json(f"GET job {namespace}/{name}", self.batch.read_namespaced_job, name, namespace)

    def config_map(self, namespace: str, name: str) -> dict:
        return self._json(f"GET configmap {namespace}/{name}", self.core.read_namespaced_config_map, name, namespace)

    def pods(self, namespace: str, selector: str) -> list[dict]:
        return self._list(f"GET pods {namespace} ({selector})", self.core.list_namespaced_pod, namespace,
                          label_selector=selector)

    def pod_log(self, namespace: str, name: str, container: str) -> str:
        data = self._call(f"GET pod log {namespace}/{name}", self.core.read_namespaced_pod_log, name, namespace,
                          container=container)
        return data.decode(errors="replace")

    def job_updates(self, namespace: str, name: str, timeout: float, heartbeat: float) -> Iterator[dict]:
        """The Job as it is now, then at each change (a watch), and at least every `heartbeat` seconds, until
        `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        current = self.job(namespace, name)
        yield current
        while (left := deadline - time.monotonic()) > 0:
            changed = False
            events = watch.Watch().stream(
                self.batch.list_namespaced_job, namespace, field_selector=f"metadata.name={name}",
                resource_version=current["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(min(heartbeat, left) + 0.999)), _request_timeout=REQUEST_TIMEOUT)
            try:
                for event in events:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        current, changed = event["raw_object"], True
                        yield current
            except ApiException as error:
                if error.status != 410:  # 410: the watch's version expired; read the Job afresh below
                    raise self._refused(f"WATCH job {namespace}/{name}", error) from None
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # a dropped watch is read afresh below
            if not changed:
                current = self.job(namespace, name)
                yield current

    # --- writes ---
    def create_job(self, namespace: str, job: dict) -> dict:
        return self._json(f"POST job {namespace}/{job['metadata']['name']}", self.batch.create_namespaced_job,
                          namespace, job)

    def replace_secret(self, namespace: str, secret: dict) -> dict:
        """Creates the Secret, replacing one of the same name (a previous run's, left by an interrupted run)."""
        self.delete_secret(namespace, secret["metadata"]["name"])
        return self._json(f"POST secret {namespace}/{secret['metadata']['name']}",
                          self.core.create_namespaced_secret, namespace, secret)

    def delete_secret(self, namespace: str, name: str) -> None:
        """Deletes the Secret; one already gone is fine."""
        try:
            self._call(f"DELETE secret {namespace}/{name}", self.core.delete_namespaced_secret, name, namespace)
        except KubeError as error:
            if error.status != 404:
                raise

    def patch_node(self, name: str, patch: dict) -> dict:
        """A strategic merge patch of the node (spec.unschedulable, spec.taints, metadata.labels)."""
        return self._json(f"PATCH node {name}", self.core.patch_node, name, patch)

    def evict(self, namespace: str, name: str) -> None:
        """Asks the Eviction API to evict the pod (it honours PodDisruptionBudgets: 429 while one forbids it)."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        self._call(f"POST eviction {namespace}/{name}", self.core.create_namespaced_pod_eviction, name, namespace,
                   body)

    def create_cluster_object(self, group: str, version: str, plural: str, body: dict) -> dict:
        custom = client.CustomObjectsApi(self.api_client)
        return self._json(f"POST {plural}.{group} {body['metadata']['name']}", custom.create_cluster_custom_object,
                          group, version, plural, body)

    def create_namespace(self, namespace: dict) -> None:
        self._call(f"POST namespace {namespace['metadata']['name']}", self.core.create_namespace, namespace)

    def delete_namespace(self, name: str) -> None:
        try:
            self._call(f"DELETE namespace {name}", self.core.delete_namespace, name)
        except KubeError as error:
            if error.status != 404:
                raise

    def admits_pod(self, namespace: str, pod: dict) -> Optional[str]:
        """None when the API server's admission (server-side dry run: nothing is created) would accept the pod,
        else its refusal message."""
        try:
            self._call(f"POST pod {namespace}/{pod['metadata']['name']} (dry run)", self.core.create_namespaced_pod,
                       namespace, pod, dry_run="All")
        except KubeError as error:
            if error.status in (400, 403, 422):
                return str(error)
            raise
        return None


def add_arguments(parser) -> None:
    """--kubeconfig and --context, as every live command takes them (kubectl's meaning and defaults)."""
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's "
                                             "service account when run inside a pod)")
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")


def connect_from(args) -> Kube:
    return connect(args.kubeconfig, args.context)
