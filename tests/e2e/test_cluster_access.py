"""The live commands' cluster access (cluster_api) against the real kube-apiserver of the local control plane, with the
kinds of kubeconfig user partners have: an exec credential plugin (as EKS, GKE and AKS ship them) printing a token the
API server accepts through its static token file, a client certificate signed by the cluster CA, and a service
account's token as in-cluster config. The server's SelfSubjectReview says whom it saw. Then preflight's admission
check on the real admission chain: PodNodeSelector refuses the probe pod where the plugin is enabled, and a control
plane started without it is reported."""
import base64
import datetime
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from ncp.cluster_api import KubeError, connect
from ncp.plan.sources import plan_from_stack_file
from ncp.preflight import checks
from ncp.preflight import cli as preflight_cli
from tests.e2e.cluster import own_control_plane

PEM = serialization.Encoding.PEM
# control-plane.sh's defaults; and a second control plane without PodNodeSelector on ports of its own (the first one
# is still up).
DEFAULT_PORTS = {"NCP_E2E_ETCD_PORT": "23790", "NCP_E2E_API_PORT": "16443", "NCP_E2E_KCM_PORT": "10357",
                 "NCP_E2E_SCHEDULER_PORT": "10359", "NCP_E2E_KWOK_PORT": "10247"}
WITHOUT_PLUGIN_PORTS = {"NCP_E2E_ETCD_PORT": "24790", "NCP_E2E_API_PORT": "17443", "NCP_E2E_KCM_PORT": "11357",
                        "NCP_E2E_SCHEDULER_PORT": "11359", "NCP_E2E_KWOK_PORT": "11247"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    with own_control_plane(tmp_path_factory.mktemp("control-plane"), DEFAULT_PORTS) as env:
        yield Path(env["NCP_E2E_STATE"])


def _admin_config(state: Path) -> dict:
    return yaml.safe_load((state / "kubeconfig").read_text())


def _kubeconfig(state: Path, path: Path, user: dict) -> Path:
    config = _admin_config(state)
    config["users"] = [{"name": "u", "user": user}]
    config["contexts"] = [{"name": "c", "context": {"cluster": "ncp-e2e", "user": "u"}}]
    config["current-context"] = "c"
    path.write_text(yaml.safe_dump(config))
    return path


def _whoami(kube) -> str:
    review = client.AuthenticationV1Api(kube.api_client).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review.status.user_info.username


def test_exec_credential_plugin(state, tmp_path):
    plugin = tmp_path / "credential-plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json, pathlib\n"
                      f"token = pathlib.Path({str(state / 'pki' / 'admin.token')!r}).read_text().strip()\n"
                      "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
                      " 'status': {'token': token}}))\n")
    plugin.chmod(0o755)
    kube = connect(str(_kubeconfig(state, tmp_path / "exec", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}})))
    assert _whoami(kube) == "ncp-e2e-admin"
    assert kube.version()["major"] == "1" and isinstance(kube.jobs("app=none"), list)


def test_client_certificate_signed_by_the_cluster_ca(state, tmp_path):
    ca_key = serialization.load_pem_private_key((state / "pki" / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((state / "pki" / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ncp-cert-user"),
                                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]))
                   .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(hours=1)).sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    kube = connect(str(_kubeconfig(state, tmp_path / "cert", {
        "client-certificate-data": base64.b64encode(certificate.public_bytes(PEM)).decode(),
        "client-key-data": base64.b64encode(key_pem).decode()})))
    assert _whoami(kube) == "ncp-cert-user"
    assert isinstance(kube.nodes(), list)


def test_in_cluster_service_account(state, tmp_path, monkeypatch):
    admin = connect(str(state / "kubeconfig"))
    core = client.CoreV1Api(admin.api_client)
    core.create_namespaced_service_account("default", {"metadata": {"name": "ncp-preflight"}})
    client.RbacAuthorizationV1Api(admin.api_client).create_cluster_role_binding({
        "metadata": {"name": "ncp-preflight-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "ncp-preflight", "namespace": "default"}]})
    token = core.create_namespaced_service_account_token(
        "ncp-preflight", "default", {"spec": {"expirationSeconds": 600}}).status.token
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token)
    (account / "ca.crt").write_bytes((state / "pki" / "ca.crt").read_bytes())
    server = _admin_config(state)["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").split(":")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    kube = connect(service_account_dir=account)
    assert _whoami(kube) == "system:serviceaccount:default:ncp-preflight"
    assert isinstance(kube.jobs("app=none"), list), "the view role reads Jobs"
    with pytest.raises(KubeError, match="HTTP 403"):
        kube.create_namespace({"metadata": {"name": "not-allowed"}})


def test_a_token_the_server_does_not_accept(state, tmp_path):
    kube = connect(str(_kubeconfig(state, tmp_path / "revoked", {"token": "not-in-the-token-file"})))
    with pytest.raises(KubeError, match="401 Unauthorized.*expired or revoked; fix: refresh them"):
        kube.version()


def _tenants_with_pools():
    site_plan = plan_from_stack_file("prod")
    if not any(spec.node_selector for spec in site_plan.tenant_specs):
        pytest.fail("the prod example has no tenant with dedicated nodes: pick a plan that does")
    return site_plan


def test_preflight_proves_pod_node_selector_on_the_real_admission_chain(state):
    kube = connect(str(state / "kubeconfig"))
    site_plan = _tenants_with_pools()
    assert checks.admission(kube, site_plan) == []
    probes = [ns["metadata"]["name"] for ns in
              client.CoreV1Api(kube.api_client).list_namespace(_preload_content=False).json()["items"]
              if ns["metadata"]["name"].startswith("ncp-preflight-")
              and not ns["metadata"].get("deletionTimestamp")]
    assert probes == [], "the probe namespace is deleted after the check"


def test_a_cluster_without_pod_node_selector_is_reported(tmp_path_factory, monkeypatch, capsys):
    # Its ports are fixed (not NCP_E2E_* overridable): the module's first control plane is still up on those.
    with own_control_plane(tmp_path_factory.mktemp("without-plugin"), {}, NCP_E2E_ADMISSION_PLUGINS="",
                           **WITHOUT_PLUGIN_PORTS) as env:
        kubeconfig = Path(env["NCP_E2E_STATE"]) / "kubeconfig"
        misses = checks.admission(connect(str(kubeconfig)), _tenants_with_pools())
        assert [m.check for m in misses] == ["admission plugins"]
        assert "the PodNodeSelector admission plugin is not enabled" in misses[0].problem
        assert "a pod selecting another node pool was admitted" in misses[0].problem
        assert "--enable-admission-plugins" in misses[0].fix
        monkeypatch.setattr(preflight_cli, "plan_from_stack_file", lambda stack: _tenants_with_pools())
        assert preflight_cli.main(["--stack", "prod", "--kubeconfig", str(kubeconfig)]) == 1
        assert "MISS  admission plugins" in capsys.readouterr().out
