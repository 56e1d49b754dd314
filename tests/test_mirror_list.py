"""`ncp mirror`: what an air-gapped site copies on a connected machine, from its stack."""
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.catalog import load_matrix
from ncp.plan.sources import plan_from_stack_file
from ncp.scaffold import mirror


def test_the_list_holds_every_pinned_chart_and_every_image_the_stack_runs(tmp_path, capsys):
    recording = run_stack_file("prod")
    listing = mirror.mirror_list(plan_from_stack_file("prod"), recording)
    matrix = load_matrix()
    assert {c["component"] for c in listing["charts"]} == {
        name for name in matrix.components if matrix.pin(name).chart_name in {
            r.inputs["chart"].split("/")[-1] for r in recording.releases().values()}}
    assert all(c["version"] == matrix.pin(c["component"]).version for c in listing["charts"])
    images = {entry["image"] for entry in listing["images"]}
    containers = {c["image"] for r in recording.resources if r.inputs.get("kind") in ("Job", "Deployment")
                  for c in r.inputs["spec"]["template"]["spec"]["containers"]}
    assert containers and containers <= images
    dgd = next(r for r in recording.custom_resources("DynamoGraphDeployment"))
    worker = next(s for s in dgd.inputs["spec"]["services"].values() if s.get("componentType") == "worker")
    assert worker["extraPodSpec"]["mainContainer"]["image"] in images
    script = mirror.mirror_script(listing, "registry.site.example", "charts-mirror")
    pin = matrix.pin("gpuOperator")
    assert f"helm pull gpu-operator --repo {pin.repository} --version {pin.version} --untar --untardir charts-mirror" \
        in script
    assert "skopeo copy --all --preserve-digests docker://nvcr.io/nvidia/ai-dynamo/" in script
    assert mirror.main(["--stack", "prod", "--out", str(tmp_path / "list.yaml"), "--script",
                        str(tmp_path / "mirror.sh")]) == 0
    assert (tmp_path / "mirror.sh").read_text().startswith("#!/usr/bin/env bash")
