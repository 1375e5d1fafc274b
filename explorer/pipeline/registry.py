"""The build's stages, in the order they run."""

from __future__ import annotations

from explorer.pipeline.analytic_stages import analytic_stages
from explorer.pipeline.core_stages import core_stages, thumbs_stage, trust_stage
from explorer.pipeline.import_stage import import_stage
from explorer.pipeline.layout_stages import layout_stages
from explorer.pipeline.partition_stage import partition_stage
from explorer.pipeline.stage import Stage
from explorer.pipeline.structure_stages import structure_stages


def all_stages() -> list[Stage]:
    """Every stage the pipeline knows, in run order (disabled ones are skipped)."""
    return [
        *core_stages(),
        import_stage(),
        *layout_stages(),
        trust_stage(),
        *analytic_stages(),
        partition_stage(),
        *structure_stages(),
        thumbs_stage(),
    ]
