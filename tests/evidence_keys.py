"""A site signing key for evidence tests: made by `evidence.signing.generate` outside the repository (a pytest
tmp_path, named by NCP_EVIDENCE_SIGNING_KEY) with a trusted keys file of its own, never the committed one."""
from types import SimpleNamespace

import pytest

from ncp.evidence.signing import KEY_ENV, Signer, generate
from ncp.plan.config import ValidationEvidence

SITE = "test-site"


def make_keys(directory, name: str = "site") -> SimpleNamespace:
    key, trusted = directory / "keys" / f"{name}.signing-key.pem", directory / "trusted-keys.yaml"
    settings = ValidationEvidence(path="evidence/test/", owner="tests", signing_key=str(key),
                                  trusted_keys=str(trusted))
    generate(SITE, settings)
    return SimpleNamespace(key=key, trusted=trusted, settings=settings, signer=Signer.load(SITE, settings))


@pytest.fixture()
def evidence_keys(tmp_path, monkeypatch) -> SimpleNamespace:
    keys = make_keys(tmp_path)
    monkeypatch.setenv(KEY_ENV, str(keys.key))
    return keys


def with_keys(raw: dict, keys: SimpleNamespace) -> dict:
    """A stack's raw config whose validationEvidence trusts the test key file."""
    raw["site"]["validationEvidence"]["trustedKeys"] = str(keys.trusted)
    return raw


def gate_config(base: dict, index, keys: SimpleNamespace, policy: str = "promotion-evidence", **extra) -> dict:
    switch = {"promotion-evidence": "requirePassedEvidence", "readiness-evidence": "requirePassedReadiness"}[policy]
    return {**base, policy: {switch: True, "evidenceIndex": str(index), "trustedKeys": str(keys.trusted), **extra}}
