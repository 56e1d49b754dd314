"""GPUs and MIG units are counted apart in the summary, the review and the picture; a tenant's quota is stated in
its unit, with a note where MIG changes what it counts. The site: 4 HGX H200 nodes, two tenants on two nodes each,
t1's nodes partitioned into 7 x 1g.18gb per GPU, a gateway route to nothing yet."""
import json
import re
from xml.etree import ElementTree

import pytest
import yaml

from ncp.offline import check
from tests.support.synthetic import site_config
from ncp.plan import sources
from ncp.report import cli as report_cli

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture()
def mig_site(tmp_path, monkeypatch):
    config = site_config("hgx-h200", "prod")
    config["components"]["gpuOperator"] = {"mig": {"strategy": "single", "layout": {"1g.18gb": 7}, "nodePool": "t1"}}
    config["tenants"][1].update(gpuQuota=28, gpuLimit=112)
    config["components"]["serving"]["gatewayInferenceExtension"] = False
    monitoring = {"prometheusSelectorLabels": {"release": "ncp-observability"}}
    config["components"]["telemetry"] = monitoring
    config["components"].setdefault("tenancy", {})["monitoringNamespace"] = "ncp-observability"
    config["ngcApiKey"] = {"secure": "v1:AAAA"}  # as `pulumi config set --secret` writes it
    document = {"encryptionsalt": "v1:c2FsdA==:v1:AAAA",
                "config": {f"ncp-inference:{key}": value for key, value in config.items()}}
    (tmp_path / "Pulumi.mig.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    return tmp_path


def test_summary_counts_physical_gpus_and_mig_devices_apart(mig_site, capsys):
    check.main(["--stack", "mig", "--policy-pack-config", "policy/config/lab.json"])
    out, err = capsys.readouterr()
    assert not err.startswith("Pulumi.mig.yaml"), err
    assert "4 GPU nodes, 32 GPUs (16 whole, 16 partitioned into 112 MIG devices (1g.18gb))" in out, out
    assert "128 GPUs" not in out  # 16 GPUs + 112 MIG devices are not 128 GPUs
    assert ["t1", "tenant-t1", "28", "112", "MIG", "devices", "(1g.18gb)"] in [
        line.split()[:7] for line in out.splitlines()]
    assert "note: t1's gpuQuota and gpuLimit count MIG devices (1g.18gb), not GPUs" in out
    assert re.search(r"guaranteed \d+/16 GPUs, 28/112 MIG devices \(1g\.18gb\)", out), out


def test_review_and_picture_count_them_apart_and_draw_the_site(mig_site, monkeypatch):
    tmp_path = mig_site
    monkeypatch.delenv("NCP_RA_TEXT", raising=False)  # traceability is not what this test is about
    from ncp.ratrace import ra_text
    monkeypatch.setattr(ra_text, "DEFAULT_RA_TEXT", tmp_path / "absent.txt")
    assert report_cli.main(["--stack", "mig", "--out", str(tmp_path)]) == 0
    review = json.loads((tmp_path / "review.json").read_text())
    assert review["gpuCount"] == {"physical": 32, "whole": 16, "partitioned": 16, "mig_units": 112,
                                  "unit": "MIG devices (1g.18gb)"}
    assert "32 GPUs (16 whole, 16 partitioned into 112 MIG devices (1g.18gb))" in (tmp_path / "review.md").read_text()
    svg = ElementTree.parse(tmp_path / "site.svg").getroot()
    width, height = (float(svg.get(side).removesuffix("pt")) for side in ("width", "height"))
    assert width <= 11.7 * 72 + 1 and height <= 8.3 * 72 + 1, "fits an A4 landscape page"
    text = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    for shown in ("site Prometheus", "namespace ncp-observability", "selects release=ncp-observability",
                  "t0 pool", "t1 pool", "east-west RDMA rails", "ens1f0np0", "models via", "limit 112 MIG devices",
                  "32 GPUs"):
        assert shown in text, shown
