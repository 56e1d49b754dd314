"""A twin process's Kubernetes identity as a pod has it (#24): the ServiceAccount, role and binding the Dynamo operator
creates for the component, a TokenRequest token for that account, and the files a pod finds at
/var/run/secrets/kubernetes.io/serviceaccount, mounted there in a private mount namespace. The process's own client
then takes the in-cluster configuration and the API server judges every call by that account's rules, so a permission
the operator does not grant makes the process fail here as in the cluster.

Which accounts and rules: data/serving-twin.yaml (kubernetesDiscovery.componentRules for the frontend and workers,
operatorStandIn.plannerRules for the planner), each with its operator source."""
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from kubernetes import client
from kubernetes.client.rest import ApiException

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3600


@dataclass(frozen=True)
class PodAccount:
    name: str
    directory: Path  # token, ca.crt and namespace, as the kubelet projects them
    env: dict[str, str]  # what a pod's environment tells the in-cluster configuration: the API server's host, port

    @property
    def wrap(self) -> list[str]:
        """Argv prefix: a private mount namespace where `directory` is at SA_DIR (over a fresh /run)."""
        return ["unshare", "-m", "sh", "-c",
                f'mount -t tmpfs twin-run /run && mkdir -p {SA_DIR} && mount --bind "{self.directory}" {SA_DIR} '
                '&& exec "$0" "$@"']

    def mount_problem(self) -> Optional[str]:
        """Why a process cannot be given the mounted account here (no private mount namespace), or None."""
        probe = subprocess.run([*self.wrap, "test", "-s", f"{SA_DIR}/token"], capture_output=True, text=True)
        return None if probe.returncode == 0 else f"unshare -m: {probe.stderr.strip()}"


def _create(create: Callable[[dict], object], body: dict, replace: Optional[Callable[[dict], object]] = None) -> None:
    """Create `body`; one left by an earlier run is kept, or replaced where `replace` is given (this run's rules)."""
    try:
        create(body)
    except ApiException as error:
        if error.status != 409:
            raise
        if replace is not None:
            replace(body)


def pod_account(api: client.ApiClient, namespace: str, account: str, rules: list[dict], directory: Path,
                cluster_role: Optional[str] = None) -> PodAccount:
    """The ServiceAccount `account` in `namespace` bound to `rules`: a Role `<account>-role` (the operator's discovery
    Role), or the ClusterRole `cluster_role` bound in the namespace (the chart's planner role), by the RoleBinding
    `<account>-binding`; then a token from the TokenRequest API written with the CA and the namespace into
    `directory`."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    role_kind, role_name = ("ClusterRole", cluster_role) if cluster_role else ("Role", f"{account}-role")
    role = {"metadata": {"name": role_name}, "rules": rules}
    _create(lambda b: core.create_namespaced_service_account(namespace, b), {"metadata": {"name": account}})
    if cluster_role:
        _create(rbac.create_cluster_role, role, lambda b: rbac.replace_cluster_role(role_name, b))
    else:
        _create(lambda b: rbac.create_namespaced_role(namespace, b), role,
                lambda b: rbac.replace_namespaced_role(role_name, namespace, b))
    _create(lambda b: rbac.create_namespaced_role_binding(namespace, b), {
        "metadata": {"name": f"{account}-binding"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(namespace)
    (directory / "ca.crt").write_bytes(Path(api.configuration.ssl_ca_cert).read_bytes())
    host, _, port = api.configuration.host.removeprefix("https://").rpartition(":")
    return PodAccount(account, directory, {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})


def without(rules: list[dict], resource: str, verbs: set[str]) -> list[dict]:
    """`rules` with `verbs` taken off every rule on `resource` (a rule left with no verb is dropped): the role that
    shows what a process does when the operator's grant lacks them."""
    narrowed = [dict(rule, verbs=[v for v in rule["verbs"] if v not in verbs]) if resource in rule["resources"]
                else rule for rule in rules]
    return [rule for rule in narrowed if rule["verbs"]]
