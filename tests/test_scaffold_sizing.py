"""A new site scaffolded from its AIConfigurator sizing files: its endpoints come from the files, and each tenant's GPU,
CPU and memory quotas hold what its endpoints' pods take at once (the plan's own count), each number saying where it
came from (issue #23, item 5: quotas from the sizing)."""
import re

import pytest

from ncp.offline import check
from ncp.plan import sources
from ncp.scaffold import cli as scaffold
from tests.test_scaffold import _fill

SIZED = ["--site", "west", "--profile", "hgx-h200", "--environment", "staging", "--gpu-nodes", "4",
         "--tenant", "acme", "--tenant", "beta:8",
         "--endpoint", "acme:sites/prod/sizing/chat-dense.yaml",
         "--endpoint", "acme:sites/prod/sizing/reasoning-large.yaml"]


def _written(tmp_path, monkeypatch, args) -> str:
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert scaffold.main(args) == 0
    return (tmp_path / "Pulumi.west.yaml").read_text()


def _filled(text: str) -> str:
    """The site's values for what only it knows (tests/test_scaffold.py _fill, plus what endpoints add)."""
    text = _fill(text).replace(
        '"REPLACE-ME(storage product of the site, naming each storageClass of serving.storage)"',
        "VAST for site-model, site-node-local and site-benchmark")
    text = re.sub(r'"REPLACE-ME\(size, e.g. (\w+)\)"', r"\1", text)
    text = re.sub(r'"REPLACE-ME\(existing StorageClass for (?:the )?([^ )]*)[^)]*\)"', r"site-\1", text)
    text = text.replace('"REPLACE-ME(site-built AIPerf image, e.g. nvcr.io/<your NGC org>/tools/aiperf:<version>)"',
                        "nvcr.io/west/tools/aiperf:0.8.0")
    text = re.sub(r'"REPLACE-ME\(full commit hash[^"]*\)"', "0123456789abcdef0123456789abcdef01234567", text)
    return re.sub(r'"REPLACE-ME\(model class[^"]*\)"', "dense-llm", text)


def test_a_site_scaffolded_from_its_sizing_holds_its_endpoints(tmp_path, monkeypatch, capsys):
    text = _written(tmp_path, monkeypatch, SIZED)
    assert "gpuQuota: 24\n      gpuLimit: 24" in text, "8 + 16 sized GPUs"
    for where in ("sites/prod/sizing/chat-dense.yaml: endpoint chat-dense, 8 GPUs",
                  "sites/prod/sizing/reasoning-large.yaml: endpoint reasoning-large, 16 GPUs",
                  "data/dynamo-backends.yaml", "data/tenant-pods.yaml",
                  "# limits.memory: chat-dense workers 2 x 208Gi, chat-dense frontends (LimitRange default) 2 x 16Gi"):
        assert where in text
    assert "- name: chat-dense\n      tenant: acme" in text and "sizing: sites/prod/sizing/reasoning-large.yaml" in text
    (tmp_path / "Pulumi.west.yaml").write_text(_filled(text))
    assert check.main(["--stack", "west"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    # Exact, not padded: one Gi less than the written memoryLimit is refused by the plan's quota count.
    limit = int(re.search(r"memoryLimit: (\d+)Gi", text).group(1))
    (tmp_path / "Pulumi.west.yaml").write_text(_filled(text).replace(f"memoryLimit: {limit}Gi",
                                                                      f"memoryLimit: {limit - 1}Gi"))
    assert check.main(["--stack", "west"]) == 2
    assert (f"ncp-inference:tenants[0].memoryLimit: is {limit - 1}Gi; quota admission counts {limit}Gi of "
            "limits.memory") in capsys.readouterr().err


BASE = SIZED[:SIZED.index("--tenant")]
ACME = ["--tenant", "acme", "--endpoint", "acme:sites/prod/sizing/chat-dense.yaml"]


@pytest.mark.parametrize("answers, message", [
    (["--tenant", "acme:4", "--endpoint", "acme:sites/prod/sizing/chat-dense.yaml"],
     "--tenant acme:4: its endpoints are sized to 8 GPUs (sites/prod/sizing/chat-dense.yaml 8); give it a GPU quota "
     "of at least 8"),
    (ACME + ["--endpoint", "gamma:sites/prod/sizing/reasoning-large.yaml"],
     "--endpoint: gamma is not one of the --tenant"),
    (ACME + ["--endpoint", "acme:sites/lab/sizing/chat-small.yaml"],
     "sites/lab/sizing/chat-small.yaml was sized for system 'l40s'; profile hgx-h200 is 'h200_sxm': re-size it with "
     "--system h200_sxm"),
    (ACME + ["--endpoint", "acme:sizing/west/missing.yaml"], "sizing file not found; fix: generate it: ncp sizing"),
    (ACME + ["--endpoint", "acme"], "write TENANT:SIZING_FILE"),
    (ACME + ["--endpoint", "acme:sites/prod/sizing/chat-dense.yaml"], "two sizing files make endpoint chat-dense"),
    (["--tenant", "solo"], "--tenant 'solo': give its GPUs (NAME:GPU_QUOTA[:GPU_LIMIT]) or its sized endpoints"),
])
def test_bad_sizing_answers_exit_2_naming_the_fix(tmp_path, monkeypatch, capsys, answers, message):
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert scaffold.main(BASE + answers) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "Pulumi.west.yaml").exists()
