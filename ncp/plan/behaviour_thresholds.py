"""Thresholds for how an endpoint starts and how it rides out a lost worker, judged from the startup and failure
evidence the serving twin records (ncp/evidence/behaviour.py reads it; the inputs it needs are documented there)."""
# RA: Performance Guidance: "collect model download, cache-hit, weight-transfer, and first-ready timestamps"
# RA: Performance Guidance: "For operations, track GPU health events, recovery time"
from typing import Optional

from pydantic import Field

from ncp.plan.strict import StrictModel


class StartupThresholds(StrictModel):
    """Seconds from the worker pod's creation to each phase, for a cold start (empty model cache) and a warm one."""

    cold_model_loaded_seconds: Optional[float] = Field(default=None, gt=0, description="cold start: weights loaded")
    cold_first_token_seconds: float = Field(gt=0, description="cold start: first token served")
    warm_container_ready_seconds: Optional[float] = Field(default=None, gt=0, description="warm start: container ready")
    warm_first_token_seconds: float = Field(gt=0, description="warm start: first token served")
    warm_cache_hit: bool = Field(default=True, description="a warm start must load from the model cache (no download)")


class FailureThresholds(StrictModel):
    """A worker killed mid-run: how long until the endpoint serves at full strength again, and what clients saw."""

    recovery_seconds: float = Field(gt=0, description="seconds from the kill until the replacement worker serves")
    client_error_rate_max: float = Field(default=0.0, ge=0, le=1,
                                         description="failed / sent client requests during the run")
