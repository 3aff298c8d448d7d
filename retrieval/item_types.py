"""What the item-side passes report: a catalog pass of one embedder, and a fitted item map.

Plain records, so that eval can put them in a report and tests can compare them; the
work itself is in retrieval/item_vectors.py (the pass) and retrieval/item_map.py (the map).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from retrieval.types import Frozen


class CatalogPass(Frozen):
    """One pass of an embedder over the catalog into its own collection. Only items whose
    text (or the embedder) changed are embedded again: an unchanged catalog costs reads."""

    embedder: str
    collection: str
    items: Annotated[int, Field(ge=0)]
    written: Annotated[int, Field(ge=0)]
    """Items embedded and written this pass (new, or their text changed)."""
    unchanged: Annotated[int, Field(ge=0)]
    """Items whose cached vector was kept."""
    seconds: Annotated[float, Field(ge=0)]
    """Wall time of the pass, starting the model included when it had to start."""
    full_pass_seconds: Annotated[float, Field(ge=0)] | None = None
    """Wall time of the last pass that embedded every item of its input (this one or an
    earlier one: it is kept with the collection), so a cached run still tells the cost."""
    full_pass_items: Annotated[int, Field(ge=1)] | None = None

    @property
    def seconds_per_item(self) -> float | None:
        """Cost of embedding one item, measured on the last full pass."""
        if self.full_pass_seconds is None or not self.full_pass_items:
            return None
        return self.full_pass_seconds / self.full_pass_items


class MapFit(Frozen):
    """How a linear item map was fitted: on which items, with what ridge, how well."""

    source: str
    """The text vectors' embedder."""
    warm_items: Annotated[int, Field(ge=1)]
    """Items with a collaborative vector: the only ones the map is fitted on."""
    text_dim: Annotated[int, Field(ge=1)]
    target_dim: Annotated[int, Field(ge=1)]
    ridge: Annotated[float, Field(gt=0)]
    """The chosen ridge penalty (lowest cross-validated error on the warm items)."""
    cv_r2: float
    """Share of the collaborative vectors' variance the map predicts on held-out warm
    items (k-fold, at the chosen penalty): 0 is no better than the mean vector."""
    cv_r2_by_ridge: dict[str, float] = Field(default_factory=dict)
    """Every penalty tried, with its cross-validated R²."""
