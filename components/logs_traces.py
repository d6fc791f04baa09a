"""The logs-and-traces tier: Loki and Tempo store, Alloy collects, Grafana (elsewhere) looks.

Edges: Loki, Tempo -> Alloy (Alloy ships to both). Loki has a Docker health check
(`loki -health`), so Alloy is created once it answers /ready; Tempo has none (distroless, no
self-probe), so Alloy is created once its container exists; Alloy retries its pushes, so
nothing is lost meanwhile. Grafana waits for neither: its data sources connect on the first
query (docs/start-order.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.alloy import Alloy, AlloyArgs
from components.config import StackConfig
from components.loki import Loki, LokiArgs
from components.spec import Platform, ScrapeTarget
from components.tempo import Tempo, TempoArgs


@dataclass(frozen=True)
class LogsTraces:
    loki: Loki
    tempo: Tempo
    alloy: Alloy

    def scrape_targets(self) -> list[ScrapeTarget]:
        return [*self.loki.scrape_targets, *self.tempo.scrape_targets, *self.alloy.scrape_targets]


def logs_traces_tier(
    name: str, c: StackConfig, platform: Platform, opts: pulumi.ResourceOptions
) -> LogsTraces | None:
    """None when the logsTraces setting is off."""
    if not c.logs_traces:
        return None
    loki = Loki(
        f"{name}-loki",
        LokiArgs(
            image=c.loki_image, memory_mb=c.loki_memory_mb, retention_days=c.log_retention_days
        ),
        platform,
        opts=opts,
    )
    tempo = Tempo(
        f"{name}-tempo",
        TempoArgs(
            image=c.tempo_image,
            memory_mb=c.tempo_memory_mb,
            retention_days=c.trace_retention_days,
        ),
        platform,
        opts=opts,
    )
    alloy = Alloy(
        f"{name}-alloy",
        AlloyArgs(
            image=c.alloy_image,
            memory_mb=c.alloy_memory_mb,
            stack=c.stack,
            loki_push_url=f"{loki.url}/loki/api/v1/push",
            tempo_otlp_endpoint=tempo.otlp_url,
            depends_on=[loki, tempo],
        ),
        platform,
        opts=opts,
    )
    return LogsTraces(loki=loki, tempo=tempo, alloy=alloy)
