"""#22 item 14: an acceptance run takes its Jobs by namespace and name from the stack as rendered, refuses one whose
pod template was changed after deploy, ignores look-alike Jobs a tenant made with the same labels, and keeps the
template's annotations on the Job it runs (KAI's gang size)."""
import copy

import pytest

from ncp.cluster_api import KubeError
from ncp.evidence import run
from ncp.evidence.acceptance_jobs import ChangedJob, deployed_jobs, expected_jobs, spec_digest
from ncp.plan.catalog import integration_points
from ncp.plan.names import RUN_OF_ANNOTATION
from ncp.plan.sources import plan_from_stack_file

ENDPOINTS = [e.endpoint.name for e in plan_from_stack_file("prod").endpoints]


@pytest.fixture(scope="module")
def expected():
    return expected_jobs("prod", ENDPOINTS)


def as_the_api_server_holds_it(job: dict) -> dict:
    """The deployed Job with what the API server adds: defaults on containers and volumes, a status."""
    held = copy.deepcopy(job)
    pod = held["spec"]["template"]["spec"]
    for container in pod["containers"]:
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container["terminationMessagePath"] = "/dev/termination-log"
    for volume in pod.get("volumes", []):
        for source in ("configMap", "secret"):
            if source in volume:
                volume[source]["defaultMode"] = 420
    pod.setdefault("dnsPolicy", "ClusterFirst")
    held["metadata"]["uid"] = "u-1"
    held["status"] = {}
    return held


class Cluster:
    """Jobs by namespace/name; also a tenant's look-alike with the benchmark labels in its namespace."""

    def __init__(self, jobs: list[dict]):
        self.jobs = {(j["metadata"]["namespace"], j["metadata"]["name"]): j for j in jobs}

    def job(self, namespace: str, name: str) -> dict:
        if (namespace, name) not in self.jobs:
            raise KubeError(f"GET job {namespace}/{name}: HTTP 404: not found", 404)
        return self.jobs[(namespace, name)]


def test_the_run_takes_the_rendered_jobs_by_namespace_and_name(expected):
    names = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in expected]
    assert names[0] == ("ncp-validation", "isv-ncp-validation"), "the validation suite first"
    assert [n for _, n in names[1:]] == [f"{e}-aiperf" for e in ENDPOINTS], "then each endpoint, in plan order"
    look_alike = copy.deepcopy(expected[1])
    look_alike["metadata"].update(name="faster-aiperf")
    look_alike["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "cp /fake/* /out/"]
    cluster = Cluster([as_the_api_server_holds_it(j) for j in expected] + [look_alike])
    picked = deployed_jobs(cluster.job, expected)
    assert [j["metadata"]["name"] for j in picked] == [n for _, n in names], "the look-alike is never picked"


@pytest.mark.parametrize("edit", ["command", "image", "claim", "env"])
def test_a_job_changed_after_deploy_is_refused(expected, edit):
    held = [as_the_api_server_holds_it(j) for j in expected]
    benchmark = held[1]["spec"]["template"]["spec"]
    container = benchmark["containers"][0]
    if edit == "command":
        container["command"] = ["sh", "-c", "cp /fake/profile_export_aiperf.json /results/"]
    elif edit == "image":
        container["image"] = "nvcr.io/some-org/aiperf:forged"
    elif edit == "claim":
        volume = next(v for v in benchmark["volumes"] if "persistentVolumeClaim" in v)
        volume["persistentVolumeClaim"]["claimName"] = "tenant-scratch"
    else:
        container.setdefault("env", []).append({"name": "AIPERF_FAKE", "value": "1"})
    with pytest.raises(ChangedJob, match=held[1]["metadata"]["name"]):
        deployed_jobs(Cluster(held).job, expected)
    assert spec_digest(held[1]) != spec_digest(expected[1])


def test_api_server_defaults_do_not_change_the_digest(expected):
    assert all(spec_digest(as_the_api_server_holds_it(j)) == spec_digest(j) for j in expected)


def test_a_missing_job_is_bad_input_naming_it(expected):
    held = [as_the_api_server_holds_it(j) for j in expected[:-1]]
    gone = f"{expected[-1]['metadata']['namespace']}/{expected[-1]['metadata']['name']}"
    with pytest.raises(KubeError, match=gone):
        deployed_jobs(Cluster(held).job, expected)


def test_a_run_job_keeps_the_templates_annotations():
    gang = integration_points().kai.batch_min_member_annotation
    template = {"metadata": {"name": "nccl-tests", "namespace": "ncp-readiness", "labels": {"a": "b"},
                             "annotations": {gang: "2"}},
                "spec": {"suspend": True, "selector": {}, "template": {"metadata": {"labels": {}}, "spec": {}}}}
    job = run.run_job(template, "r1")
    assert job["metadata"]["annotations"] == {gang: "2", RUN_OF_ANNOTATION: "nccl-tests"}
    assert job["spec"]["suspend"] is False and "selector" not in job["spec"]


def test_the_command_refuses_a_changed_job_with_exit_1(expected, monkeypatch, tmp_path, capsys):
    held = [as_the_api_server_holds_it(j) for j in expected]
    held[1]["spec"]["template"]["spec"]["containers"][0]["args"] = ["--forged"]
    cluster = Cluster(held)
    monkeypatch.setattr(run, "connect_from", lambda args: cluster)
    code = run.main(["--stack", "prod", "--outputs", str(tmp_path), "--cache-state", "warm"], say=lambda _: None)
    assert code == 1 and "changed after deploy" in capsys.readouterr().err


def test_a_stack_that_renders_no_acceptance_jobs_is_bad_input(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "expected_jobs", lambda stack, endpoints: [])
    monkeypatch.setattr(run, "connect_from", lambda args: Cluster([]))
    code = run.main(["--stack", "prod", "--outputs", str(tmp_path), "--cache-state", "warm"], say=lambda _: None)
    assert code == 2 and "components.serving.validation" in capsys.readouterr().err
