"""Site scaffolding: a new stack from a profile and a few answers carries placeholders that validation refuses
until each is replaced; the checklist names what the site must provide."""
import json
import re

import pytest

from ncp.offline import check
from ncp.plan import sources
from ncp.scaffold import cli as scaffold
from ncp.scaffold import checklist
from tests.support.synthetic import EXAMPLE_SIGNER_KEY


def _scaffold(tmp_path, monkeypatch, *args) -> str:
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert scaffold.main(list(args)) == 0
    return (tmp_path / f"Pulumi.{args[args.index('--site') + 1]}.yaml").read_text()


def _fill(text: str) -> str:
    """What a site does: replace each placeholder with a real value of its kind."""
    nics = iter(f"ens{i}f0np0" for i in range(1, 99))
    text = re.sub(r'"REPLACE-ME\(host netdev[^"]*\)"', lambda _: next(nics), text)
    text = re.sub(r'"REPLACE-ME\(east-west CIDR[^"]*\)"', "10.200.0.0/16", text)
    text = re.sub(r'"REPLACE-ME\(sha256 digest of [^"]*\)"', lambda _: "sha256:" + "6" * 64, text)
    text = re.sub(r'"REPLACE-ME\((the site\'s [^"]*|why the site chose it)\)"', "Recorded by the site team", text)
    return re.sub(r'"REPLACE-ME\((identity-provider group of (\S+) admins)\)"', r"\2-admins", text) \
        .replace('"REPLACE-ME(where acceptance evidence is stored, e.g. s3://<bucket>/acceptance/)"', "s3://b/e/") \
        .replace('"REPLACE-ME(team that owns validation evidence)"', "validation-team") \
        .replace('"REPLACE-ME(site-built validation suite image, e.g. nvcr.io/<your NGC org>/tools/'
                 'isv-ncp-validation-suite:<version>@sha256:<digest>)"',
                 "nvcr.io/west/tools/isv-ncp-validation-suite:0.6.8@sha256:" + "0" * 64) \
        .replace('"REPLACE-ME(site-built nccl-tests image, e.g. nvcr.io/<your NGC org>/tools/'
                 'nccl-tests:<version>@sha256:<digest>)"', "nvcr.io/west/tools/nccl-tests:25.06@sha256:" + "5" * 64) \
        .replace('"REPLACE-ME(PEM public key of the site\'s cosign signer (cosign.pub))"',
                 json.dumps(EXAMPLE_SIGNER_KEY))


def test_lab_scaffold_is_refused_until_filled_then_validates(tmp_path, monkeypatch, capsys):
    text = _scaffold(tmp_path, monkeypatch, "--site", "lab-2", "--profile", "lab", "--environment", "lab",
                     "--gpu-nodes", "1", "--tenant", "dev:1")
    assert check.main(["--stack", "lab-2"]) == 2
    err = capsys.readouterr().err
    assert "ncp-inference:tenants[0].admins[0]: is still the scaffold placeholder" in err
    assert "pulumi config set --path 'ncp-inference:tenants[0].admins[0]' <value>" in err
    (tmp_path / "Pulumi.lab-2.yaml").write_text(_fill(text))
    assert check.main(["--stack", "lab-2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["dev", "tenant-dev", "1", "1", "GPUs", "1", "-"] in rows


def test_prod_scaffold_on_an_rdma_profile_asks_for_every_site_value(tmp_path, monkeypatch, capsys):
    text = _scaffold(tmp_path, monkeypatch, "--site", "west", "--profile", "hgx-h200", "--environment", "prod",
                     "--gpu-nodes", "4", "--tenant", "acme:16:24", "--tenant", "beta:8")
    assert "nvcr.io/" not in text.replace("nvcr.io/<your NGC org>", "") and "\nencryptionsalt:" not in text
    assert "sha256:" not in text.replace("@sha256:<digest>", "") and "secure:" not in text
    assert check.main(["--stack", "west"]) == 2
    err = capsys.readouterr().err
    assert "24 problems" in err  # evidence path and owner, NGC key, 8 rail NICs, the rail subnet, suite and NCCL
    # images, the signer key, two admin groups, two partner-product decisions (certificate manager, metrics backend),
    # with their reasons, the gate images' two digests (and the schema naming their digest format once)
    for path in ("site.validationEvidence.path", "site.validationEvidence.owner",
                 "components.networkOperator.railInterfaces[7]", "components.networkOperator.railSubnet",
                 "tenants[1].admins[0]", "components.serving.validation.ncclImage",
                 "components.tenancy.imageSignatures.publicKeys[0]"):
        assert f"ncp-inference:{path}: is still the scaffold placeholder" in err
    (tmp_path / "Pulumi.west.yaml").write_text(_fill(text))
    assert check.main(["--stack", "west"]) == 2
    err = capsys.readouterr().err  # filled in: only the secret is left, and it is never written to the file
    assert "1 problem;" in err and "ncp-inference:ngcApiKey: is still the scaffold placeholder" in err
    assert "fix: replace it with the site's value: pulumi config set --secret ncp-inference:ngcApiKey <value>" in err


def test_gpu_nodes_are_explained_per_profile(tmp_path, monkeypatch):
    text = _scaffold(tmp_path, monkeypatch, "--site", "rack", "--profile", "gb300-nvl72", "--environment", "lab",
                     "--gpu-nodes", "18", "--tenant", "a:8")
    assert "gpuNodes: 18  # gb300-nvl72: 4 GPUs per node -> 72 GPUs; one NVLink domain (rack) is 18 nodes" in text


@pytest.mark.parametrize("args, message", [
    (["--profile", "no-such"], "--profile 'no-such': use one of"),
    (["--tenant", "Bad_Name:1"], "--tenant 'Bad_Name:1': write NAME:GPU_QUOTA[:GPU_LIMIT]"),
    (["--tenant", "a:8:4"], "the GPU limit (4) is below the quota (8)"),
    (["--site", "lab"], "Pulumi.lab.yaml exists: choose another --site or --out, or pass --force"),
    (["--out", "{tmp}/no-such-dir/Pulumi.new.yaml"], "no-such-dir does not exist; create it (mkdir -p"),
    (["--out", "{tmp}", "--force", ""], "is a directory; name a file in it"),
])
def test_bad_answers_exit_2_without_writing(tmp_path, monkeypatch, capsys, args, message):
    (tmp_path / "Pulumi.lab.yaml").write_text("config: {}\n")
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    base = {"--site": "new", "--profile": "lab", "--environment": "lab", "--gpu-nodes": "1", "--tenant": "a:1"}
    base.update({key: value.format(tmp=tmp_path) for key, value in zip(args[::2], args[1::2], strict=True)})
    assert scaffold.main([item for pair in base.items() for item in pair if item]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "Pulumi.lab.yaml").read_text() == "config: {}\n"
    assert not (tmp_path / "Pulumi.new.yaml").exists()


def test_checklist_names_what_the_site_provides(tmp_path, monkeypatch, capsys):
    text = _scaffold(tmp_path, monkeypatch, "--site", "west", "--profile", "hgx-h200", "--environment", "staging",
                     "--gpu-nodes", "2", "--tenant", "acme:8")
    (tmp_path / "Pulumi.west.yaml").write_text(_fill(text))
    assert checklist.main(["--stack", "west"]) == 0
    out = capsys.readouterr().out
    assert "- [ ] group `acme-admins` exists in the identity provider (admin of tenant acme)" in out
    assert "- [ ] interface `ens8f0np0` on every GPU node, rail subnet 10.200.7.0/24" in out
    assert "`nvidia.com/gpu.product=NVIDIA-H200`" in out
    assert "cert-manager" in out  # NVSentinel's prerequisite from the compatibility matrix
    (tmp_path / "Pulumi.west.yaml").write_text(text)
    assert checklist.main(["--stack", "west"]) == 2  # an unfinished stack has no checklist yet


def test_placeholders_do_not_hide_other_problems(tmp_path, monkeypatch, capsys):
    """A stack with placeholders left and a real mistake elsewhere shows both in the first round."""
    text = _scaffold(tmp_path, monkeypatch, "--site", "lab-3", "--profile", "lab", "--environment", "lab",
                     "--gpu-nodes", "1", "--tenant", "dev:1")
    (tmp_path / "Pulumi.lab-3.yaml").write_text(text.replace("gpuLimit: 1", "gpuLimit: 9"))
    assert check.main(["--stack", "lab-3"]) == 2
    err = capsys.readouterr().err
    assert "ncp-inference:tenants[0].admins[0]: is still the scaffold placeholder" in err
    assert "ncp-inference:tenants[0].gpuLimit" in err  # 9 GPUs on a one-GPU site: reported in the same round


def test_a_b200_prod_site_with_every_option_validates_once_filled(tmp_path, monkeypatch, capsys):
    """The issue's site: HGX B200, 24 GPU nodes, 4 tenants, a MIG pool, a gateway, air-gapped with an in-cluster model
    mirror, the site's monitoring release. The scaffold computes the rail prefix and the quotas; once the
    placeholders are filled (and the chart mirror exists), only the secret is left."""
    from ncp.plan import local_overlay
    from ncp.plan.rules import local as local_rules
    text = _scaffold(tmp_path, monkeypatch, "--site", "b200", "--profile", "hgx-b200", "--environment", "prod",
                     "--gpu-nodes", "24", "--tenant", "acme:64:96", "--tenant", "beta:32:40", "--tenant", "gamma:16",
                     "--tenant", "vision:8", "--mig-pool", "vision:1g.23gb=7", "--gateway", "inference-gateway",
                     "--air-gapped", "--monitoring-release", "site-prometheus")
    assert "railPrefixLength: 23" in text  # a /24 per rail gives nv-ipam blocks to 15 nodes only
    assert "gpuLimit: 56" in text and "Counted in MIG devices: 8 GPUs x 7 slices" in text
    assert "prometheusSelectorLabels: {release: site-prometheus}" in text
    filled = _fill(text)
    for what, value in (("project directory of the pinned charts", "charts-mirror"),
                        ("model mirror Service name", "hf-mirror"), ("model mirror namespace", "model-mirror"),
                        ("the Gateway implementation", "Envoy Gateway with InferencePool support"),
                        ("why the site chose it", "The RA names no Gateway implementation; the site runs Envoy.")):
        filled = re.sub(r'"REPLACE-ME\(' + re.escape(what) + r'[^"]*\)"', f'"{value}"', filled)
    filled = re.sub(r'"REPLACE-ME\(model mirror port[^"]*\)"', "8080", filled)
    from ncp.plan.catalog import load_matrix
    matrix = load_matrix()
    for name in matrix.components:  # what `bash mirror.sh` unpacks: each pinned chart at its version
        chart = tmp_path / "charts-mirror" / matrix.pin(name).chart_name
        chart.mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"name: {matrix.pin(name).chart_name}\nversion: {matrix.pin(name).version}\n")
    monkeypatch.setattr(local_overlay, "ROOT", tmp_path)
    monkeypatch.setattr(local_rules, "ROOT", tmp_path)
    (tmp_path / "Pulumi.b200.yaml").write_text(filled)
    assert check.main(["--stack", "b200"]) == 2
    err = capsys.readouterr().err
    assert "1 problem;" in err and "ncp-inference:ngcApiKey: is still the scaffold placeholder" in err, err


def test_checklist_lists_every_prerequisite_the_stack_names(monkeypatch):
    """Each object named at a key of data/site-prerequisites.yaml (the model mirror Service among them), the
    monitoring release label the site's Prometheus selects by, and every site-built image."""
    import yaml

    from tests.support.synthetic import mutate
    from ncp.plan.catalog import ROOT
    from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV
    from ncp.plan.site_plan import build_plan
    from tests.test_model_staging import MIRROR, _config

    raw = mutate(_config({"airGapped": True, "mirror": MIRROR}), "components.telemetry.prometheusSelectorLabels",
                 {"release": "site-prometheus"})
    monkeypatch.setenv(OVERLAY_ENV, CONTROL_PLANE_OVERLAY)  # the air-gapped site's charts: the stand-ins, locally
    site_plan = build_plan(raw, set(), "Pulumi.e2e.yaml", sources.local_overlay("Pulumi.e2e.yaml"))
    text = checklist.render_checklist(site_plan, ["gpuOperator"])
    assert "the model mirror Service `model-mirror/hf-mirror` serves http://hf-mirror.model-mirror.svc" in text
    assert "Service `hf-mirror` (named at `ncp-inference:components.serving.modelStaging.mirror.service`)" in text
    assert "labelled `release=site-prometheus` (telemetry.prometheusSelectorLabels" in text
    config = site_plan.config.model_dump(by_alias=True, mode="json")
    provided = yaml.safe_load((ROOT / "data" / "site-prerequisites.yaml").read_text())["siteProvided"]
    for kind, keys in provided.items():
        for key in keys:
            for _, value in checklist._at(config, key.split("."), ""):
                if isinstance(value, str):
                    assert f"{kind} `{value}`" in text, (kind, key)
