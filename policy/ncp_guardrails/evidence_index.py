"""The evidence index the promotion gates read: a local file, or an object in an S3-compatible bucket
(`s3://<bucket>/<key>`, read with boto3; endpoint and credentials from the standard AWS settings). The pack reads
nothing of the program's checkout: where the index and the trusted keys are comes from its config (`evidenceIndex`,
`trustedKeys`; a local path is taken as given, so give it absolute, as `ncp check` does for the project's files).
Each site keeps its own evidence: `{stack}` in either location is the stack of the resources judged (from their
URNs), and the defaults are the site folder's files, as the program writes them (ncp/plan/names.py).
Each entry is believed only when it is signed by a trusted site key, fresh, and its record is the one it signed
(ncp_guardrails.evidence_trust); the others are kept with the reason they were refused, for the gate's message."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ncp_guardrails.evidence_trust import TrustedKeysError, entry_problem, parse_trusted_keys

S3 = "s3://"
EVIDENCE_INDEX = "sites/{stack}/evidence/index.yaml"
TRUSTED_KEYS = "sites/{stack}/evidence/trusted-keys.yaml"
# The pack config every evidence gate takes: where the index and the trusted public keys are.
INDEX_CONFIG = {"evidenceIndex": {"type": "string", "default": EVIDENCE_INDEX},
                "trustedKeys": {"type": "string", "default": TRUSTED_KEYS}}


class IndexUnreadable(Exception):
    pass


@dataclass
class Evidence:
    """The index's entries the gate believes, and those it refused with the reason."""
    trusted: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # (entry, reason)
    index: str = ""  # where the entries were read

    def refusals(self, **match) -> list[str]:
        return [f"{entry.get('runId')} ({reason})" for entry, reason in self.refused
                if all(entry.get(key) == value for key, value in match.items())]


def _s3_text(location: str):
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    bucket, _, key = location[len(S3):].partition("/")
    try:
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise IndexUnreadable(f"{location}: {error}") from None
    except BotoCoreError as error:
        raise IndexUnreadable(f"{location}: {error} (check AWS_ENDPOINT_URL and the credentials)") from None


def read_text(location: str) -> Optional[str]:
    """A local file (as configured) or an s3:// object; None when it does not exist."""
    if location.startswith(S3):
        return _s3_text(location)
    path = Path(location)
    return path.read_text() if path.is_file() else None


def load_index(location: str) -> list:
    """The index's records (none when it does not exist yet); IndexUnreadable when the bucket cannot be read."""
    text = read_text(location)
    return (yaml.safe_load(text) or {}).get("records", []) if text else []


def judge_entries(entries: list, keys) -> Evidence:
    evidence = Evidence()
    for entry in entries:
        problem = entry_problem(entry, keys, read_text)
        if problem is None:
            evidence.trusted.append(entry)
        else:
            evidence.refused.append((entry, problem))
    return evidence


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type>::<name> -> <stack>."""
    return urn.split("::")[0].rsplit(":", 1)[-1]


def locations(config: dict, resources) -> tuple[str, str]:
    """The evidence index and trusted keys of the stack judged: `{stack}` filled from the resources' URNs."""
    stacks = {stack_of(resource.urn) for resource in resources if getattr(resource, "urn", None)}
    stack = stacks.pop() if len(stacks) == 1 else "{stack}"
    return (config.get("evidenceIndex", EVIDENCE_INDEX).replace("{stack}", stack),
            config.get("trustedKeys", TRUSTED_KEYS).replace("{stack}", stack))


def gate_entries(args, switch: str, report) -> Optional[Evidence]:
    """The index entries a promotion gate judges, or None when the gate is off (its `switch` config) or the index or
    the trusted keys cannot be read (reported as a violation: no evidence is no acceptance)."""
    config = args.get_config() or {}
    if not config.get(switch):
        return None
    index_file, keys_file = locations(config, args.resources)
    try:
        keys = parse_trusted_keys(read_text(keys_file), keys_file)
        evidence = judge_entries(load_index(index_file), keys)
        evidence.index = index_file
        return evidence
    except IndexUnreadable as error:
        report(f"the evidence index cannot be read: {error}")
    except TrustedKeysError as error:
        report(f"the trusted evidence keys cannot be read: {error}")
    return None
