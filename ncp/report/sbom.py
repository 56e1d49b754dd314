"""SBOM availability per image (data/image-sbom.yaml): recorded facts with their source; everything else unknown,
which the release review lists as a disposition item."""
from functools import lru_cache
from typing import Literal, Optional

import yaml

from ncp.plan.catalog import ROOT
from ncp.plan.strict import StrictModel

SBOM_FILE = ROOT / "data" / "image-sbom.yaml"
SBOM_UNKNOWN = "unknown: no upstream source recording whether this image publishes an SBOM"


class SbomFact(StrictModel):
    sbom: Literal["published", "not-published"]
    where: Optional[str] = None
    source: str
    note: Optional[str] = None


class SbomFacts(StrictModel):
    images: dict[str, SbomFact]

    def describe(self, repository: str) -> Optional[str]:
        fact = self.images.get(repository)
        if fact is None:
            return None
        where = f" ({fact.where})" if fact.where else ""
        return f"{fact.sbom}{where}; source: {fact.source}" + (f"; {fact.note}" if fact.note else "")


@lru_cache(maxsize=1)
def sbom_facts() -> SbomFacts:
    return SbomFacts.model_validate(yaml.safe_load(SBOM_FILE.read_text()))


def disposition_items(images: list[dict]) -> list[str]:
    """One item per image whose SBOM availability is unknown."""
    return [f"SBOM availability of {row['repository']} is unknown: record it in data/image-sbom.yaml with its "
            "source, or generate an SBOM for the pinned digest and keep it with the release"
            for row in images if row["sbom"] == SBOM_UNKNOWN]
