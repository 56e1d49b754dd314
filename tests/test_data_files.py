"""The data files: profiles carry what the RA asks a profile to record; the matrix is the only place versions live
(the copies that must stand without it are generated from it by `ncp sync-pins` and checked here)."""
import re

import pytest

from ncp import sync_pins
from ncp.plan import catalog
from ncp.plan.catalog import ROOT, load_matrix, load_profile, profile_names
from ncp.plan.errors import ConfigError


# RA: GPU Compute Node: "The node design should account for GPU memory capacity"
@pytest.mark.parametrize("name", profile_names())
def test_profile_records_what_the_ra_asks(name):
    profile = load_profile(name)
    assert profile.gpu.product_label.startswith("NVIDIA-")
    assert profile.gpu.per_node >= 1 and profile.gpu.memory_gib >= 1
    assert profile.sources
    if profile.has_rdma_fabric:
        assert profile.fabric.nics_per_node >= 1 and profile.fabric.nic_speed_gbps > 0
    for mig_profile in profile.gpu.mig.profiles:
        assert re.fullmatch(r"[1-7]g\.[0-9]+gb", mig_profile)


def test_mig_profiles_match_gpu_memory():
    for name in profile_names():
        profile = load_profile(name)
        for mig_profile in profile.gpu.mig.profiles:
            slices, memory = re.fullmatch(r"([1-7])g\.([0-9]+)gb", mig_profile).groups()
            assert int(memory) <= profile.gpu.memory_gib, (name, mig_profile)


def test_invalid_profile_names_file_key_and_fix(tmp_path, monkeypatch):
    bad = (ROOT / "profiles" / "lab.yaml").read_text().replace("perNode: 1", "perNode: 0")
    (tmp_path / "lab.yaml").write_text(bad)
    monkeypatch.setattr(catalog, "PROFILES_DIR", tmp_path)
    catalog.load_profile.cache_clear()
    try:
        with pytest.raises(ConfigError) as error:
            catalog.load_profile("lab")
    finally:
        catalog.load_profile.cache_clear()
    assert str(tmp_path / "lab.yaml") in str(error.value)
    assert "gpu.perNode: must be >= 1" in str(error.value)
    assert "fix: use a value >= 1" in str(error.value)


# RA: Customer Problem: "without losing traceability to the component versions"
def test_every_matrix_entry_records_its_ra_row_and_source():
    for name, pin in load_matrix().components.items():
        assert pin.ra_matrix and pin.source, name
        if pin.local_decision is None:
            assert "helm.ngc.nvidia.com" in pin.repository or pin.chart.startswith("oci://ghcr.io/"), name
        else:
            assert "not an NVIDIA RA component" in pin.ra_matrix or pin.ra_matrix.startswith("none"), name


def test_versions_are_pinned_only_in_the_matrix():
    """No chart version, chart reference or pinned image tag appears as a literal in the program's code."""
    pins = set()
    for pin in load_matrix().components.values():
        pins |= {pin.version, pin.repository} | ({pin.chart} if "/" in pin.chart else set())
        pins |= {tag.partition(":")[2] or tag for tag in pin.images.values()}
    code = [p for folder in ("ncp", "components") for p in (ROOT / folder).rglob("*.py")]
    code += [ROOT / "__main__.py"]
    assert len(code) > 100, "the scan must see the program's code"
    offenders = [(path.name, pin) for path in code for pin in pins if pin and pin in path.read_text()]
    assert offenders == []


# --- one edit per bump: the copies of the matrix's pins (sync_pins) -------------------------------------------------

def test_every_copy_of_a_pin_equals_the_matrix():
    """The one check of everything the pack and the e2e stand-in charts repeat (pins, allowlists, shared names):
    each differing key is named with the value to write, its home and the command that rewrites every copy."""
    problems = sync_pins.drift(load_matrix())
    assert not problems, "\n".join(problems)


def _bumped(name: str, version: str):
    matrix = load_matrix()
    pin = matrix.components[name].model_copy(update={"version": version})
    return matrix.model_copy(update={"components": {**matrix.components, name: pin}})


def test_a_bump_names_each_stale_copy_its_key_and_the_value_to_write():
    pinned = load_matrix().components["grove"].version
    bumped = _bumped("grove", pinned + "-bumped")
    assert sync_pins.drift(bumped) == [
        f"policy/ncp_guardrails/pins.yaml: charts.grove.version is '{pinned}', write '{pinned}-bumped' (it copies "
        "data/compatibility-matrix.yaml components.grove.version; `ncp sync-pins` rewrites every copy)",
        f"tests/e2e/charts/grove-charts/Chart.yaml: version is '{pinned}', write '{pinned}-bumped' (it copies "
        "data/compatibility-matrix.yaml components.grove.version; `ncp sync-pins` rewrites every copy)"]


def test_the_generator_brings_stale_copies_in_step(tmp_path):
    for copy in sync_pins.copies(load_matrix()):
        (tmp_path / copy.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / copy.path).write_text((ROOT / copy.path).read_text())
    bumped = _bumped("kaiScheduler", load_matrix().components["kaiScheduler"].version + "-bumped")
    assert len(sync_pins.drift(bumped, tmp_path)) == 2
    assert sync_pins.write(bumped, tmp_path) == [sync_pins.PACK_PINS,
                                                 sync_pins.STAND_INS / "kai-scheduler" / "Chart.yaml"]
    assert sync_pins.drift(bumped, tmp_path) == []
    removed = load_matrix().model_copy(update={"components": {
        k: v for k, v in load_matrix().components.items() if k != "grove"}})
    assert "policy/ncp_guardrails/pins.yaml: charts.grove.chart is not in data/compatibility-matrix.yaml: remove it" \
        in "\n".join(sync_pins.drift(removed, tmp_path))


def _tracked_copies(tmp_path):
    for copy in sync_pins.copies(load_matrix()):
        (tmp_path / copy.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / copy.path).write_text((ROOT / copy.path).read_text())
    return tmp_path


def test_a_stale_shared_name_or_allowlist_names_its_home(tmp_path):
    """The pack's program.yaml and allowlists.yaml are copies too: a stale one names the program file to change."""
    root = _tracked_copies(tmp_path)
    names = root / sync_pins.PACK_NAMES
    names.write_text(names.read_text().replace('tenant: "ncp-inference.io/tenant"', 'tenant: "example.io/tenant"'))
    allowlists = root / sync_pins.PACK_ALLOWLISTS
    allowlists.write_text(allowlists.read_text().replace("  - hf://\n", ""))
    assert sync_pins.drift(load_matrix(), root) == [
        "policy/ncp_guardrails/allowlists.yaml: modelSources is ['ngc://', 's3://'], "
        "write ['hf://', 'ngc://', 's3://'] (it copies data/allowlists.yaml modelSources; `ncp sync-pins` "
        "rewrites every copy)",
        "policy/ncp_guardrails/program.yaml: labels.tenant is 'example.io/tenant', write 'ncp-inference.io/tenant' "
        "(it copies ncp/plan/names.py TENANT_KEY; `ncp sync-pins` rewrites every copy)"]


def test_a_hand_edit_that_keeps_the_values_is_named_too(tmp_path):
    root = _tracked_copies(tmp_path)
    pins = root / sync_pins.PACK_PINS
    pins.write_text(pins.read_text() + "# a hand-written note\n")
    assert sync_pins.drift(load_matrix(), root) == [
        "policy/ncp_guardrails/pins.yaml: its values agree with data/compatibility-matrix.yaml but not its text: do "
        "not edit it by hand, run `ncp sync-pins`"]
