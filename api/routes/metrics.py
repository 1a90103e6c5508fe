"""GET /metrics: every API process's metrics and the cluster gauges, for Prometheus.

Not in the OpenAPI document (it is not part of the jobs API; Prometheus speaks its own
text format). Open unless VISIONQ_METRICS_TOKEN is set: labels carry tenant names.
"""

from __future__ import annotations

import hmac
import threading

from fastapi import APIRouter, Request, Response

from visionq.api.deps import ApiResources, ResourcesDep
from visionq.api.errors import ApiError
from visionq.models.metrics_cluster import ClusterCollector
from visionq.models.metrics_expose import render, scrape_registry

router = APIRouter(include_in_schema=False)

_collector_lock = threading.Lock()


def _cluster(request: Request, resources: ApiResources) -> ClusterCollector:
    """The process's one collector (its cache is what bounds the SQL per scrape period)."""
    with _collector_lock:
        collector: ClusterCollector | None = getattr(request.app.state, "cluster_metrics", None)
        if collector is None:
            collector = ClusterCollector(
                resources.engine, resources.redis, cache_s=resources.settings.metrics_cache_s
            )
            request.app.state.cluster_metrics = collector
        return collector


def _check_token(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise ApiError(
            "unauthorized",
            "/metrics needs 'Authorization: Bearer <VISIONQ_METRICS_TOKEN>' (Prometheus: "
            "authorization.credentials_file in its scrape config).",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get("/metrics")
def metrics(request: Request, resources: ResourcesDep) -> Response:
    """Prometheus text format: counters and histograms summed over this API's processes,
    and the cluster gauges (queues, batches, webhooks, budgets) as of at most
    VISIONQ_METRICS_CACHE_S ago. Runs in the threadpool (file reads and SQL)."""
    _check_token(request, resources.settings.metrics_token_value())
    body, content_type = render(scrape_registry(_cluster(request, resources)))
    return Response(content=body, media_type=content_type)
