"""#22 item 13 remainder: images in tenant namespaces are verified by signature at admission. ValidatingAdmissionPolicy
cannot verify a signature, so the site runs the Sigstore policy-controller (a prerequisite): the program renders its
ClusterImagePolicy for the allowlisted registries with the site's signer keys and opts the tenant namespaces in
(data/integration-points.yaml sigstore, read from the controller's CRD and webhook configuration); preflight checks
the webhook is installed and selects those namespaces; prod refuses a stack without signer keys."""
import pytest

from ncp.cluster_api import KubeError
from ncp.plan.catalog import integration_points, load_allowlists
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import plan_from_stack_file
from ncp.preflight.checks import image_signatures
from ncp.readmodel.manifests import core_manifests
from tests.support.synthetic import EXAMPLE_SIGNER_KEY, secret_keys, site_config

NAMES = integration_points().sigstore


def _policies(recording) -> list[dict]:
    return [r.inputs for r in recording.resources
            if r.type == f"kubernetes:{NAMES.group}/{NAMES.version}:{NAMES.kind}"]


def test_prod_renders_the_image_policy_and_opts_every_tenant_namespace_in(prod):
    [policy] = _policies(prod)
    globs = [image["glob"] for image in policy["spec"]["images"]]
    assert globs == [f"{registry.rstrip('/')}/**" for registry in load_allowlists().image_registries]
    [authority] = policy["spec"]["authorities"]
    assert authority["key"]["data"].startswith("-----BEGIN PUBLIC KEY-----")
    tenants = [n for n in core_manifests(prod) if n["kind"] == "Namespace"
               and n["metadata"]["name"].startswith("tenant-")]
    assert tenants and all(n["metadata"]["labels"].get(NAMES.include_label) == "true" for n in tenants)
    platform = [n for n in core_manifests(prod) if n["kind"] == "Namespace" and n not in tenants]
    assert not [n for n in platform if NAMES.include_label in n["metadata"].get("labels", {})], \
        "only tenant namespaces opt in (the platform's charts are judged at preview)"


# The fields the ClusterImagePolicy v1alpha1 schema defines where the program writes (sigstore/policy-controller
# config/300-clusterimagepolicy.yaml at 0adb8031: spec.properties, authorities.items.properties,
# authorities.items.properties.key.properties, images.items.properties).
CRD_FIELDS = {"spec": {"authorities", "images", "match", "mode", "policy"},
              "authority": {"attestations", "ctlog", "key", "keyless", "name", "rfc3161timestamp", "source", "static"},
              "key": {"data", "hashAlgorithm", "kms", "secretRef"}, "image": {"glob"}}


def test_the_policy_uses_only_fields_of_the_upstream_crd(prod):
    [policy] = _policies(prod)
    spec = policy["spec"]
    assert set(spec) <= CRD_FIELDS["spec"]
    assert all(set(a) <= CRD_FIELDS["authority"] and set(a["key"]) <= CRD_FIELDS["key"] for a in spec["authorities"])
    assert all(set(image) <= CRD_FIELDS["image"] for image in spec["images"])
    assert (policy["apiVersion"], policy["kind"]) == (f"{NAMES.group}/{NAMES.version}", NAMES.kind)


def test_a_lab_without_signer_keys_renders_no_policy(lab):
    assert _policies(lab) == []
    assert not [n for n in core_manifests(lab) if NAMES.include_label in n["metadata"].get("labels", {})]


def test_prod_refuses_a_stack_without_signer_keys():
    config = site_config("lab", "prod", tenants=1, gpu_nodes=1)
    build_plan(config, secret_keys(config), "Pulumi.fixture.yaml")
    del config["components"]["tenancy"]
    with pytest.raises(ConfigError) as error:
        build_plan(config, secret_keys(config), "Pulumi.fixture.yaml")
    assert "ncp-inference:components.tenancy.imageSignatures.publicKeys" in [p.path for p in error.value.problems]
    assert "policy-controller" in str(error.value)
    config["components"]["tenancy"] = {"imageSignatures": {"publicKeys": ["not a key"]}}
    with pytest.raises(ConfigError, match=r"publicKeys\[0\]: is not a PEM public key"):
        build_plan(config, secret_keys(config), "Pulumi.fixture.yaml")
    assert EXAMPLE_SIGNER_KEY.startswith("-----BEGIN PUBLIC KEY-----")


class Cluster:
    def __init__(self, webhook=None, status=None):
        self.webhook, self.status, self.asked = webhook, status, []

    def validating_webhook_configuration(self, name):
        self.asked.append(name)
        if self.status:
            raise KubeError("forbidden", self.status)
        return self.webhook


def _webhook(values=("true",), failure="Fail") -> dict:
    # As sigstore/policy-controller config/500-webhook-configuration.yaml installs it.
    return {"metadata": {"name": NAMES.webhook_configuration}, "webhooks": [{
        "name": NAMES.webhook_configuration, "failurePolicy": failure, "namespaceSelector": {"matchExpressions": [
            {"key": NAMES.include_label, "operator": "In", "values": list(values)}]}}]}


def test_preflight_finds_the_policy_controller_webhook():
    site_plan = plan_from_stack_file("prod")
    cluster = Cluster(_webhook())
    assert image_signatures(cluster, site_plan) == [] and cluster.asked == [NAMES.webhook_configuration]
    [missing] = image_signatures(Cluster(None), site_plan)
    assert missing.check == "image signatures" and "policy-controller" in missing.fix
    assert [m.check for m in image_signatures(Cluster(_webhook(values=("false",))), site_plan)] == ["image signatures"]
    assert [m.check for m in image_signatures(Cluster(_webhook(failure="Ignore")), site_plan)] == ["image signatures"]
    with pytest.raises(KubeError):
        image_signatures(Cluster(status=403), site_plan)
    assert image_signatures(Cluster(None), plan_from_stack_file("lab")) == [], "nothing to verify without keys"
