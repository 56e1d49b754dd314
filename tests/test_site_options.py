"""Site options used by air-gapped sites and test clusters: a chart mirror, an external datastore Secret,
skipAwait; the test cluster's come from the local control plane's overlay, never from a staging or prod stack file.
(The stand-in charts' names and versions are checked with every copy of a pin: tests/test_data_files.py.)"""
import pytest
import yaml

from ncp.readmodel.recorder import run_program, run_stack_file
from tests.support.synthetic import site_config
from ncp.plan.catalog import load_matrix
from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV
from tests.policy_helpers import LAB_CONFIG, PROD_CONFIG, clone, find_release, messages, set_inputs

MIRROR = "tests/e2e/charts"


@pytest.fixture()
def local_control_plane(monkeypatch):
    monkeypatch.setenv(OVERLAY_ENV, CONTROL_PLANE_OVERLAY)


def test_chart_mirror_keeps_versions_and_is_recorded(local_control_plane):
    recording = run_stack_file("e2e")
    for release in recording.releases().values():
        assert release.inputs["chart"].startswith(f"./{MIRROR}/")
        assert "repositoryOpts" not in release.inputs
    gpu = recording.releases()["gpu-operator"].inputs
    assert gpu["version"] == load_matrix().pin("gpuOperator").version
    record = next(r.inputs["data"] for r in recording.of_type("kubernetes:core/v1:ConfigMap")
                  if r.inputs["metadata"]["name"] == "ncp-baseline-record")
    assert yaml.safe_load(record["chartMirror"]) == MIRROR
    assert messages(recording, "charts-pinned", PROD_CONFIG) == ""
    drifted = clone(recording)
    release = find_release(drifted, "gpu-operator")
    set_inputs(release, {**release.wire_inputs, "version": "v25.3.0"})
    assert "the compatibility matrix pins v26.7.0" in messages(drifted, "charts-pinned", LAB_CONFIG)


def test_external_datastore_secret_replaces_generated_credentials():
    config = site_config("lab")
    config["components"] = {"health": {"datastoreSecret": "nvsentinel-from-vault"}}
    recording = run_program(config, set(), stack="external")
    assert not recording.of_type("random:index/randomPassword:RandomPassword")
    assert not [r for r in recording.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == "nvsentinel-datastore-credentials"]
    values = recording.releases()["nvsentinel"].inputs["values"]
    assert values["mongodb-store"]["mongodb"]["auth"]["existingSecret"] == "nvsentinel-from-vault"


def test_skip_await_reaches_claims_and_staging(local_control_plane, monkeypatch):
    recording = run_stack_file("e2e")
    for claim in recording.of_type("kubernetes:core/v1:PersistentVolumeClaim"):
        assert claim.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    staging = next(r.inputs for r in recording.of_type("kubernetes:batch/v1:Job")
                   if r.inputs["metadata"]["name"] == "chat-dense-model-staging")
    assert staging["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    monkeypatch.delenv(OVERLAY_ENV)
    lab_staging = next(r.inputs for r in run_stack_file("lab").of_type("kubernetes:batch/v1:Job")
                       if r.inputs["metadata"]["name"] == "chat-small-model-staging")
    assert lab_staging["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "14400"
