"""Synthetic stack configs for tests and benchmarks: a valid site for any profile and environment."""
import copy
from typing import Any

from ncp.plan.catalog import load_profile

RAIL_NAMES = [f"ens{i}f0np0" for i in range(1, 9)]
# The partner products every site uses, recorded where the pack is mandatory (ncp/plan/rules/ra.py).
PARTNER_DECISIONS = [
    {"kind": "certManager", "decision": "cert-manager issues the NVSentinel datastore certificates",
     "reason": "cert-manager is the site's certificate manager, not an NVIDIA RA component."},
    {"kind": "metricsBackend", "decision": "the site's Prometheus Operator loads monitors and rules",
     "reason": "The RA names telemetry signals, not a metrics backend."}]


# A cosign signer's public key (ECDSA P-256), for prod sites' image signature verification.
EXAMPLE_SIGNER_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEye/CQiH8Wz6//QaRg/ICAnFnBNvY
7TNlkcQTOrM/m6ZrkA6aHY/ibEXrNYpyPeej55Pp119eZihvEsHEpJJL3g==
-----END PUBLIC KEY-----
"""


def site_config(profile: str, environment: str = "lab", tenants: int = 2, gpu_nodes: int = 4) -> dict[str, Any]:
    hardware = load_profile(profile)
    capacity = gpu_nodes * hardware.gpu.per_node
    per_tenant = max(capacity // (tenants + 1), 0)
    config: dict[str, Any] = {
        "site": {
            "name": f"site-{profile}",
            "environment": environment,
            "hardwareProfile": profile,
            "gpuNodes": gpu_nodes,
            "validationEvidence": {"path": f"evidence/{profile}/", "owner": "validation"},
        },
        "tenants": [
            {"name": f"t{i}", "gpuQuota": per_tenant, "gpuLimit": min(per_tenant * 2, capacity),
             "admins": [f"t{i}-admins"]}
            for i in range(tenants)
        ],
    }
    if environment == "prod" and tenants > 1:
        # Prod refuses several tenants sharing nodes: each gets gpuNodes / tenants nodes of its own.
        pool_nodes = gpu_nodes // tenants
        for tenant in config["tenants"]:
            tenant["nodePool"] = {"nodes": pool_nodes}
            tenant["gpuLimit"] = min(tenant["gpuLimit"], pool_nodes * hardware.gpu.per_node)
            tenant["gpuQuota"] = min(tenant["gpuQuota"], tenant["gpuLimit"])
    if hardware.has_rdma_fabric:
        # /20 rails: nv-ipam blocks of 16 addresses for up to 255 nodes.
        config["components"] = {"networkOperator": {"railInterfaces": RAIL_NAMES[: hardware.fabric.nics_per_node],
                                                    "railPrefixLength": 20}}
    if environment in ("staging", "prod"):
        config["localDecisions"] = copy.deepcopy(PARTNER_DECISIONS)
    if environment == "prod":
        config["ngcApiKey"] = "test-ngc-key"
        config.setdefault("components", {})["tenancy"] = {"imageSignatures": {"publicKeys": [EXAMPLE_SIGNER_KEY]}}
        config.setdefault("components", {})["serving"] = {
            "validation": {"suiteImage": "nvcr.io/test-org/tools/isv-ncp-validation-suite:0.6.8@sha256:" + "0" * 64,
                           "storageImage": "nvcr.io/test-org/tools/fio:3.38@sha256:" + "4" * 64,
                           **({"ncclImage": "nvcr.io/test-org/tools/nccl-tests:25.06@sha256:" + "5" * 64}
                              if hardware.has_rdma_fabric else {})},
            # The return-to-service gate's DCGM and NCCL images (prod pins them by digest).
            "imageDigests": {"dcgm": "sha256:" + "5" * 64, "ncclTests": "sha256:" + "6" * 64}}
    return config


def secret_keys(config: dict) -> set[str]:
    return {"ngcApiKey"} & set(config)


def mutate(config: dict, path: str, value: Any) -> dict:
    """Copy of config with the dotted/indexed path (e.g. 'tenants[1].gpuQuota') set to value."""
    result = copy.deepcopy(config)
    target: Any = result
    parts = path.replace("[", ".[").split(".")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if last:
            target[key] = value
        else:
            if isinstance(key, str) and key not in target:
                target[key] = {}
            target = target[key]
    return result


def record_storage(config: dict) -> dict:
    """config with a storage decision naming every storage class its tiers use (staging and prod require one)."""
    tiers = ((config.get("components") or {}).get("serving") or {}).get("storage") or {}
    classes = sorted({tier["storageClass"] for tier in tiers.values() if tier})
    decisions = [d for d in config.get("localDecisions", []) if d.get("kind") != "storage"]
    if classes:
        decisions.append({"kind": "storage", "decision": f"Storage classes {', '.join(classes)}",
                          "reason": "Storage products are partner-selected; the RA requires separate tiers."})
    return {**config, "localDecisions": decisions}
