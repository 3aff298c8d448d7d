"""The query rule, written once: a user's taste as one vector, and the nearest liked item.

The taste is the mean liked vector (plus any extra positive parts, such as an embedded
wish) minus `dislike_weight` times the mean disliked vector. Semantic retrieval, the chat
profile's retrieval and the embedding baseline all use it; `taste` is the raw vector (the
baseline scores with it), `taste_vector` the unit-length query that retrieval sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from retrieval.embeddings import l2_normalise

DISLIKE_WEIGHT = 0.5
CANCELLED = 1e-6
"""A taste shorter than this means the dislikes cancelled the likes: use the likes alone."""


def taste(
    liked: Sequence[np.ndarray],
    disliked: Sequence[np.ndarray],
    *,
    dislike_weight: float = DISLIKE_WEIGHT,
    extra: Sequence[np.ndarray] = (),
    unit_means: bool = False,
) -> np.ndarray:
    """mean(liked) + sum(extra) - dislike_weight * mean(disliked), not normalised.

    With no positive part the dislikes are subtracted from the zero vector. `unit_means`
    scales both means to unit length first (the chat profile weighs its parts that way).
    Raises ValueError when there is no vector at all."""
    return _combine(_positives(liked, extra, unit_means), disliked, dislike_weight, unit_means)


def taste_vector(
    liked: Sequence[np.ndarray],
    disliked: Sequence[np.ndarray],
    *,
    dislike_weight: float = DISLIKE_WEIGHT,
    extra: Sequence[np.ndarray] = (),
    fallback: Callable[[], np.ndarray] | None = None,
    unit_means: bool = False,
) -> np.ndarray:
    """The unit-length retrieval query for this taste (float32).

    With no liked and no extra vector, `fallback()` is the positive part if given;
    otherwise the query points straight away from the mean disliked vector. If the
    dislikes cancel the positive parts exactly, the first positive part alone is used."""
    parts = _positives(liked, extra, unit_means)
    if not parts and fallback is not None:
        parts = [fallback()]
    if not parts:
        if not len(disliked):
            raise ValueError("no liked, extra or disliked vector to build a taste from")
        return _unit(-np.mean(disliked, axis=0))
    query = _combine(parts, disliked, dislike_weight, unit_means)
    if np.linalg.norm(query) < CANCELLED:
        query = parts[0]
    return _unit(query)


def nearest(ids: Sequence[str], matrix: np.ndarray | None, vector: np.ndarray) -> str | None:
    """The id whose row of `matrix` has the largest dot product with `vector` (the first
    on ties); None without rows. `matrix` is `stack(...)` of the same ids, in order."""
    if matrix is None or not len(ids):
        return None
    return ids[int(np.argmax(matrix @ vector))]


def stack(vectors: Sequence[np.ndarray]) -> np.ndarray | None:
    """The vectors as the rows of one matrix for `nearest`; None when there are none."""
    return np.stack(vectors) if len(vectors) else None


def _combine(
    parts: Sequence[np.ndarray], disliked: Sequence[np.ndarray], dislike_weight: float,
    unit_means: bool,
) -> np.ndarray:
    """The rule itself: the positive parts added in order, minus the weighted dislikes."""
    if parts:
        query = parts[0]
        for part in parts[1:]:
            query = query + part
    elif len(disliked):
        query = np.zeros_like(disliked[0])
    else:
        raise ValueError("no liked, extra or disliked vector to build a taste from")
    if len(disliked):
        query = query - dislike_weight * _mean(disliked, unit_means)
    return query


def _positives(
    liked: Sequence[np.ndarray], extra: Sequence[np.ndarray], unit_means: bool
) -> list[np.ndarray]:
    return ([_mean(liked, unit_means)] if len(liked) else []) + list(extra)


def _mean(vectors: Sequence[np.ndarray], unit: bool) -> np.ndarray:
    mean: np.ndarray = np.mean(vectors, axis=0)
    return l2_normalise(mean) if unit else mean


def _unit(query: np.ndarray) -> np.ndarray:
    return l2_normalise(np.asarray(query, dtype=np.float32))
