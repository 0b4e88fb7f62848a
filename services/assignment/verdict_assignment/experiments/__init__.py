"""ExperimentService: experiments, the metric catalog, saved groups and the audit log.

Pure modules (no grpc, asyncpg or redis): `checks`, `experiment_rules`, `catalog_rules`,
`lifecycle`, `changes`, `paging`, `ports`, `growthbook_shape` and `growthbook_import` (GrowthBook
JSON to experiments). Use cases: `manager` (experiments), `catalog` (metrics, saved groups, audit
log), `importer` (ImportGrowthBook). Adapters: `repository` (all SQL), `publisher` (Redis).
Entry point: `build_experiment_servicer(resources)`, imported lazily so that importing a pure
module of this package loads no gRPC, database or Redis code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verdict_assignment.experiments.servicer import build_experiment_servicer

__all__ = ["build_experiment_servicer"]


def __getattr__(name: str) -> Any:
    if name == "build_experiment_servicer":
        from verdict_assignment.experiments.servicer import build_experiment_servicer

        return build_experiment_servicer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
