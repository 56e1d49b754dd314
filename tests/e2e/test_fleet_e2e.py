"""`ncp fleet` against live clusters: three site stacks over one shared base, each deployed by the real engine to a
local API server of its own (NCP_E2E_COMPONENTS=api: etcd, kube-apiserver and the controller manager; the fleet
needs three API surfaces, no pods); `fleet status` lists them with no drift; an out-of-band edit on one site (a
tenant's quota, a GPU node's labels) is reported as drift and exits 1; a chart bump's wave plan is computed from the
fleet's git repository and its first wave applied through the Automation API, while the second stays gated on
evidence.

Ports: three per cluster from NCP_E2E_FLEET_PORT_BASE (default 29101: 29101..29109)."""
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from ncp.fleet.command import main
from ncp.plan.catalog import load_matrix, load_profile
from ncp.plan.names import PROJECT
from tests.e2e.cluster import UPSTREAM, start_control_plane, stop_control_plane
from tests.e2e.engine import pulumi, stack_env
from tests.e2e.test_lab_e2e import CONFIG as LAB_SITE
from tools.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[2]
SITES = ("site-a", "site-b", "site-c")
PORT_BASE = int(os.environ.get("NCP_E2E_FLEET_PORT_BASE", "29101"))
GIT = ("-c", "user.name=fleet-e2e", "-c", "user.email=fleet-e2e@example.invalid")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT, *args], check=True, capture_output=True, text=True).stdout


def _fleet_repository(folder: Path) -> Path:
    """The project's files (as the engine e2e copies them) in a git repository of their own, with the three sites
    over one base (bases/lab-e2e.yaml: everything but the site's name and evidence path)."""
    repo = folder / "fleet-repo"
    copy_project(repo)
    for stale in repo.glob("Pulumi.*.yaml"):
        stale.unlink()
    (repo / "bases").mkdir()
    (repo / "bases" / "lab-e2e.yaml").write_text(yaml.safe_dump(
        {"config": {f"{PROJECT}:{key}": value for key, value in LAB_SITE.items()}}, sort_keys=False))
    for site in SITES:
        (repo / f"Pulumi.{site}.yaml").write_text(yaml.safe_dump({"config": {
            f"{PROJECT}:base": "bases/lab-e2e.yaml",
            f"{PROJECT}:site": {"name": site, "validationEvidence": {"path": f"evidence/{site}/"}}}}))
    _git(repo, "init", "-q", "-b", "main")
    return repo


def _gpu_node(site_name: str) -> dict:
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": load_profile("lab").gpu.product_label}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{site_name}-gpu-0", "labels": labels}}


@pytest.fixture(scope="module")
def fleet(engine_env, tmp_path_factory):
    """Three clusters, three deployed sites, a fleet file naming each site's kubeconfig; yields (repo, fleet file,
    apis by site) with the engine's environment in os.environ (the Automation API runs the CLI with it)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the e2e installs the real upstream CRDs from there")
    folder = tmp_path_factory.mktemp("fleet")
    repo = _fleet_repository(folder)
    backend_env = stack_env(dict(engine_env), folder / "backend")
    clusters, started = {}, []
    try:
        for number, site in enumerate(SITES):
            env = {**backend_env, "NCP_E2E_STATE": str(folder / site), "NCP_E2E_COMPONENTS": "api",
                   "NCP_E2E_API_PORT": str(PORT_BASE + 3 * number),
                   "NCP_E2E_ETCD_PORT": str(PORT_BASE + 3 * number + 1)}
            started.append(env)
            api, env = start_control_plane(env)
            api.create("/api/v1/nodes", _gpu_node(site))
            clusters[site] = (api, env)
        for site in SITES:
            pulumi(repo, clusters[site][1], "stack", "init", site)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "three sites over one base (stack salts included)")
        # The three ups at once: each mostly waits on its API server, so together they take about one's time.
        with ThreadPoolExecutor(max_workers=len(SITES)) as pool:
            for done in [pool.submit(pulumi, repo, clusters[site][1], "up", "--yes", "--skip-preview", "--stack",
                                     site) for site in SITES]:
                done.result()
        fleet_file = repo / "fleet.yaml"
        fleet_file.write_text(yaml.safe_dump({"waveSize": 1, "sites": [
            {"stack": site, "kubeconfig": clusters[site][1]["KUBECONFIG"], "canary": site == "site-a",
             "risk": number} for number, site in enumerate(SITES)]}))
        with pytest.MonkeyPatch.context() as patch:
            for key, value in clusters["site-a"][1].items():
                if key != "KUBECONFIG":
                    patch.setenv(key, value)
            yield repo, fleet_file, {site: clusters[site][0] for site in SITES}
    finally:
        for env in started:
            stop_control_plane(env)


def _status(fleet_file: Path, capsys) -> tuple[int, dict]:
    code = main(["status", "--fleet", str(fleet_file), "--json", "--jobs", "1"])
    return code, {row["site"]: row for row in json.loads(capsys.readouterr().out)["sites"]}


def test_status_shows_the_three_sites_without_drift(fleet, capsys):
    _, fleet_file, _ = fleet
    code, rows = _status(fleet_file, capsys)
    drift = {site: row["drift"] for site, row in rows.items()}
    assert code == 0, json.dumps(drift, indent=1)
    assert set(rows) == set(SITES)
    for row in rows.values():
        assert (row["profile"], row["base"], row["policy"]["mandatory"]) == ("lab", "bases/lab-e2e.yaml", 0)
        assert row["drift"]["preview"] == {"changes": {}, "resources": []}, row["drift"]
        assert row["drift"]["gpu"] == {"problems": []}, row["drift"]


def test_an_out_of_band_change_is_reported_as_drift(fleet, capsys):
    _, fleet_file, apis = fleet
    api = apis["site-b"]
    quota = "/api/v1/namespaces/tenant-dev/resourcequotas/tenant-quota"
    api.patch(quota, {"spec": {"hard": {"requests.nvidia.com/gpu": "7"}}})
    api.patch("/api/v1/nodes/site-b-gpu-0", {"metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-A100"}}})
    code, rows = _status(fleet_file, capsys)
    assert code == 1
    drift = rows["site-b"]["drift"]
    # The quota is either updated back or, with the field now owned by the editor, refused as a server-side apply
    # conflict (the preview then fails): either way the resource and why are reported.
    assert {(s["type"], s["name"]) for s in drift["preview"]["resources"]} == {
        ("kubernetes:core/v1:ResourceQuota", "tenancy-dev-quota")}, drift
    assert any("gpu.product=NVIDIA-A100" in problem for problem in drift["gpu"]["problems"]), drift
    assert rows["site-a"]["status"] == rows["site-c"]["status"] == 0
    assert main(["status", "--fleet", str(fleet_file), "--jobs", "1"]) == 1
    table = capsys.readouterr().out
    assert "GPU layer 1" in table and "kubernetes:core/v1:ResourceQuota tenancy-dev-quota" in table, table


def test_a_chart_bumps_first_wave_is_applied_and_the_second_waits_for_evidence(fleet, capsys):
    repo, fleet_file, apis = fleet
    current = load_matrix().pin("gpuOperator").version
    bumped = "v26.7.1"
    _git(repo, "checkout", "-qb", "bump")
    for path in (repo / "data" / "compatibility-matrix.yaml", repo / "tests/e2e/charts/gpu-operator/Chart.yaml"):
        path.write_text(path.read_text().replace(f"version: {current}", f"version: {bumped}", 1))
    _git(repo, "commit", "-qam", f"GPU Operator {bumped}")
    _git(repo, "checkout", "-q", "main")

    assert main(["plan-upgrade", "--fleet", str(fleet_file), "--to", "bump", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["changes"] == [{"component": "gpuOperator", "from": current, "to": bumped, "images": {}}]
    assert [wave["sites"] for wave in plan["waves"]] == [["site-a"], ["site-b"], ["site-c"]]

    assert main(["plan-upgrade", "--fleet", str(fleet_file), "--to", "bump", "--wave", "1", "--apply"]) == 0
    progress = capsys.readouterr().out
    assert "wave 1: site-a: pulumi up at" in progress and "[site-a]" in progress, progress
    values = "/api/v1/namespaces/gpu-operator/configmaps/gpu-operator-rendered-values"
    assert apis["site-a"].get(values)["data"]["chart"] == f"gpu-operator-{bumped}"
    assert apis["site-c"].get(values)["data"]["chart"] == f"gpu-operator-{current}", "wave 2 and 3 untouched"
    record = json.loads(next((repo / ".fleet").glob("upgrade-*.json")).read_text())
    assert record["waves"]["1"]["site-a"]["result"] == "succeeded"

    assert main(["plan-upgrade", "--fleet", str(fleet_file), "--to", "bump", "--wave", "2", "--apply"]) == 1
    assert "site-a: evidence none" in capsys.readouterr().out
