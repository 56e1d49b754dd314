"""Where evidence records and the evidence index live: a local directory, or an S3-compatible bucket when the
location is `s3://<bucket>/<prefix>` (boto3; endpoint, region and credentials from the standard AWS settings, e.g.
AWS_ENDPOINT_URL for a MinIO or Ceph gateway, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)."""
from pathlib import Path
from typing import Optional, Union

from ncp.plan.catalog import ROOT
from ncp.cli_exit import BadInput

S3 = "s3://"


class StoreError(BadInput):
    """The evidence location cannot be read or written; the message names the location and the fix."""


class LocalStore:
    """A local directory. Locations inside the project are written project-relative, so an index committed with its
    records reads the same on every checkout (the promotion gate resolves them against the project root)."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    def location(self, key: str) -> str:
        path = (self.root / key).absolute()
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(self.root / key)

    def put(self, key: str, text: str) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return self.location(key)

    def get(self, key: str) -> Optional[str]:
        path = self.root / key
        return path.read_text() if path.is_file() else None


class S3Store:
    def __init__(self, uri: str):
        bucket, _, prefix = uri[len(S3):].partition("/")
        if not bucket:
            raise StoreError(f"{uri}: no bucket\n  fix: write the location as s3://<bucket>/<prefix>")
        import boto3  # only remote locations need it
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"{S3}{self.bucket}/{self._key(key)}"

    def put(self, key: str, text: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=text.encode())
        except (BotoCoreError, ClientError) as error:
            raise StoreError(f"{self.location(key)}: cannot write ({error})\n  fix: check the bucket, the endpoint "
                             "(AWS_ENDPOINT_URL) and the credentials") from None
        return self.location(key)

    def get(self, key: str) -> Optional[str]:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read().decode()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise StoreError(f"{self.location(key)}: cannot read ({error})") from None
        except BotoCoreError as error:
            raise StoreError(f"{self.location(key)}: cannot read ({error})\n  fix: check the endpoint "
                             "(AWS_ENDPOINT_URL) and the credentials") from None


def open_store(location: Union[str, Path]) -> Union[LocalStore, S3Store]:
    text = str(location)
    return S3Store(text) if text.startswith(S3) else LocalStore(text)


def split(location: Union[str, Path]) -> tuple[Union[LocalStore, S3Store], str]:
    """A file location (local path or s3 URI) as (store of its folder, key)."""
    text = str(location)
    if text.startswith(S3):
        folder, _, key = text.rpartition("/")
        return S3Store(folder), key
    path = Path(text)
    return LocalStore(path.parent), path.name
