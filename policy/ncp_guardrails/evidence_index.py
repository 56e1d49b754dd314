"""The evidence index the promotion gates read: a project-relative file, or an object in an S3-compatible bucket
(`s3://<bucket>/<key>`, read with boto3; endpoint and credentials from the standard AWS settings)."""
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # a local index path is project-relative
S3 = "s3://"


class IndexUnreadable(Exception):
    pass


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


def load_index(location: str) -> list:
    """The index's records (none when it does not exist yet); IndexUnreadable when the bucket cannot be read."""
    if location.startswith(S3):
        text = _s3_text(location)
    else:
        path = PROJECT_ROOT / location
        text = path.read_text() if path.is_file() else None
    return (yaml.safe_load(text) or {}).get("records", []) if text else []


def gate_entries(args, switch: str, report):
    """The index records a promotion gate judges, or None when the gate is off (its `switch` config) or the index
    cannot be read (reported as a violation: no evidence is no acceptance)."""
    config = args.get_config() or {}
    if not config.get(switch):
        return None
    try:
        return load_index(config["evidenceIndex"])
    except IndexUnreadable as error:
        report(f"the evidence index cannot be read: {error}")
        return None
