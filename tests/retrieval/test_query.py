"""The one query rule and the one nearest-item search (retrieval/query.py).

The pinned numbers below were computed with the three formulas as they were written
before they became one (SemanticRetriever._query_vector, ProfileRecommender._query,
EmbeddingScorer.score): eval reports are recomputed from these numbers, so the shared
rule must give them bit for bit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from eval.baselines import EmbeddingScorer
from eval.datasets import Rating
from eval.protocols import FULL, Case
from recagent.chat.profile_recommend import NEUTRAL_QUERY, ProfileRecommender
from recagent.types import Interaction, Item, ItemRef, PreferenceProfile, UserHistory
from retrieval.query import nearest, stack, taste, taste_vector
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

VECTORS: dict[str, list[float]] = {
    "h1": [0.123, -0.456, 0.789, 0.101],
    "h2": [-0.321, 0.654, 0.0987, -0.777],
    "h3": [0.5551, 0.3333, -0.1212, 0.4444],
    "h4": [0.91, -0.013, 0.27, -0.38],
    "h5": [0.246, -0.912, 1.578, 0.202],  # 2 x h1: half of it cancels h1 exactly
    "c1": [0.2, 0.4, -0.6, 0.1],
    "c2": [-0.73, 0.11, 0.35, 0.29],
    "c3": [0.05, -0.92, 0.31, 0.17],
    "c4": [0.66, 0.21, 0.19, -0.58],
    "c5": [-0.12, -0.34, -0.56, 0.78],
}
TEXTS: dict[str, list[float]] = {
    NEUTRAL_QUERY: [0.3, 0.3, -0.4, 0.2],
    "wish": [-0.17, 0.83, 0.41, -0.09],
}


class FakeStore:
    """Just enough of CatalogStore: stored vectors, a brute-force query, an embedder."""

    def __init__(self) -> None:
        self.vecs = {i: np.asarray(v, dtype=np.float32) for i, v in VECTORS.items()}
        self.queries: list[np.ndarray] = []
        self.embedder = SimpleNamespace(
            embed=lambda texts: [np.asarray(TEXTS["wish" if t != NEUTRAL_QUERY else t],
                                            dtype=np.float32) for t in texts])

    def count(self) -> int:
        return len(self.vecs)

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return {i: self.vecs[i] for i in dict.fromkeys(ids) if i in self.vecs}

    def query(self, vector: np.ndarray, n: int, *, exclude: Collection[str] = (),
              where: Any = None) -> list[tuple[Item, float, np.ndarray]]:
        self.queries.append(np.array(vector, copy=True))
        hits = [(float(v @ vector), i) for i, v in self.vecs.items()
                if i.startswith("c") and i not in exclude]
        hits.sort(key=lambda h: -h[0])
        return [(Item(id=i, title=f"Movie {i}", text=i), s, self.vecs[i]) for s, i in hits[:n]]


def bits(values: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


SEMANTIC = {  # name: (liked, disliked, neutral, dislike_weight)
    "mixed": (["h1", "h3"], ["h2"], [], 0.5),
    "liked": (["h1", "h4", "h3"], [], ["h2"], 0.5),
    "disliked": ([], ["h2", "h4"], [], 0.5),
    "disliked_w03": ([], ["h2", "h4"], ["h1"], 0.3),
    "mixed_w03": (["h4"], ["h1", "h2"], [], 0.3),
    "neutral": ([], [], ["h1", "h2"], 0.5),
    "cancelled": (["h1"], ["h5"], ["h2"], 0.5),
}


def semantic(name: str) -> tuple[list[float], list[tuple[str, float, str | None]]]:
    liked, disliked, neutral, weight = SEMANTIC[name]
    store = FakeStore()
    history = UserHistory(interactions=[Interaction(item_id=i, liked=True) for i in liked]
                          + [Interaction(item_id=i, rating=1) for i in disliked]
                          + [Interaction(item_id=i, rating=3) for i in neutral])
    found = SemanticRetriever(cast(CatalogStore, store), dislike_weight=weight).retrieve(
        history, 4)
    return ([float(x) for x in store.queries[0]],
            [(c.item.id, c.score, c.nearest_history_id) for c in found])


PROFILE = {  # name: (liked, disliked, wishes, include_genres, dislike_weight)
    "mixed": (["h1", "h3"], ["h2"], ["wish"], [], 0.5),
    "liked": (["h4", "h1"], [], [], [], 0.5),
    "wishes": ([], [], ["wish"], ["Drama"], 0.5),
    "nothing": ([], [], [], [], 0.5),
    "disliked": ([], ["h2", "h3"], [], [], 0.5),
    "disliked_w03": (["h4"], ["h2", "h3"], [], ["Comedy"], 0.3),
    "cancelled": (["h1"], ["h5"], [], [], 1.0),
}


def profile(name: str) -> tuple[list[float], list[tuple[str, float, str | None]]]:
    liked, disliked, wishes, genres, weight = PROFILE[name]
    store = FakeStore()
    engine = ProfileRecommender(cast(Any, SimpleNamespace(store=store, n_candidates=4,
                                                           retriever=None)),
                                dislike_weight=weight)

    def refs(ids: list[str]) -> list[ItemRef]:
        return [ItemRef(item_id=i, title=f"Movie {i}", said=i) for i in ids]

    found = engine.candidates(PreferenceProfile(liked=refs(liked), disliked=refs(disliked),
                                                wishes=wishes, include_genres=genres), 4)
    return ([float(x) for x in store.queries[0]],
            [(c.item.id, c.score, c.nearest_history_id) for c in found])


EMBEDDING = {  # name: (history items, ratings)
    "mixed": (["h1", "h2", "h3"], [5.0, 1.0, 4.0]),
    "disliked": (["h2", "h4"], [1.0, 2.0]),
    "neutral": (["h1", "h4"], [3.0, 3.0]),
    "liked": (["h3"], [5.0]),
    "cancelled": (["h1", "h5"], [5.0, 1.0]),
}


def embedding(name: str) -> dict[str, float]:
    items, ratings = EMBEDDING[name]
    case = Case(user="u", setting=FULL, target="c1", candidates=("c1", "c2", "c3", "c9"),
                history=tuple(Rating(user="u", item=i, rating=r, ts=n)
                              for n, (i, r) in enumerate(zip(items, ratings, strict=True))))
    return EmbeddingScorer(cast(CatalogStore, FakeStore())).score(case)

# ---- pinned: computed with the formulas before they were shared --------------------

PINNED_SEMANTIC = {'mixed': ([0.5212363004684448,
            -0.40520888566970825,
            0.29690274596214294,
            0.6899037957191467],
           [('c3', 0.6081774830818176, 'h1'),
            ('c5', 0.4470820426940918, 'h3'),
            ('c4', -0.08481054753065109, 'h3'),
            ('c2', -0.121087446808815, 'h1')]),
 'liked': ([0.8553388714790344,
            -0.07308702170848846,
            0.5050920844078064,
            0.0890832245349884],
           [('c4', 0.5934746265411377, 'h4'),
            ('c3', 0.28172969818115234, 'h1'),
            ('c1', -0.1523139625787735, 'h3'),
            ('c5', -0.29115772247314453, 'h3')]),
 'disliked': ([-0.3942122757434845,
               -0.4290153980255127,
               -0.2467675358057022,
               0.7743695378303528],
              [('c5', 0.9353687167167664, None),
               ('c3', 0.43012845516204834, None),
               ('c2', 0.378781795501709, None),
               ('c1', -0.024951137602329254, None)]),
 'disliked_w03': ([-0.3942122757434845,
                   -0.4290153980255127,
                   -0.2467675358057022,
                   0.7743695378303528],
                  [('c5', 0.9353687167167664, None),
                   ('c3', 0.43012845516204834, None),
                   ('c2', 0.378781795501709, None),
                   ('c1', -0.024951137602329254, None)]),
 'mixed_w03': ([0.9486578106880188,
                -0.0431070439517498,
                0.13814949989318848,
                -0.2812557816505432],
               [('c4', 0.8064384460449219, 'h4'),
                ('c3', 0.08210423588752747, 'h4'),
                ('c1', 0.06147346645593643, 'h4'),
                ('c5', -0.39592576026916504, 'h4')]),
 'neutral': ([-0.17211566865444183,
              0.17211565375328064,
              0.7716518640518188,
              -0.5876272320747375],
             [('c4', 0.40998560190200806, None),
              ('c2', 0.24424341320991516, None),
              ('c3', -0.027636734768748283, None),
              ('c1', -0.48733073472976685, None)]),
 'cancelled': ([0.13296039402484894,
                -0.49292629957199097,
                0.8528922200202942,
                0.10917885601520538],
               [('c3', 0.743097186088562, 'h1'),
                ('c2', 0.1788911670446396, 'h1'),
                ('c4', 0.08296512067317963, 'h1'),
                ('c5', -0.24082045257091522, 'h1')])}

PINNED_PROFILE = {'mixed': ([0.5153805613517761,
            0.01684940606355667,
            0.5927068591117859,
            0.6187063455581665],
           [('c3', 0.2991867661476135, 'h1'),
            ('c4', 0.09745419770479202, 'h3'),
            ('c5', 0.08310062438249588, 'h3'),
            ('c2', 0.012497840449213982, 'h1')]),
 'liked': ([0.6551145911216736,
            -0.297433465719223,
            0.6716034412384033,
            -0.1769380122423172],
           [('c4', 0.600143313407898, 'h4'),
            ('c3', 0.4845121204853058, 'h1'),
            ('c2', -0.327202171087265, 'h1'),
            ('c1', -0.4086063504219055, 'h4')]),
 'wishes': ([-0.17979606986045837,
             0.8778278231620789,
             0.4336257874965668,
             -0.09518615901470184],
            [('c2', 0.35197722911834717, None),
             ('c4', 0.20327529311180115, None),
             ('c1', 0.045477814972400665, None),
             ('c5', -0.5939615964889526, None)]),
 'nothing': ([0.4866642653942108,
              0.4866642653942108,
              -0.6488856673240662,
              0.3244428336620331],
             [('c1', 0.7137742638587952, None),
              ('c5', 0.39257580041885376, None),
              ('c4', 0.11193281412124634, None),
              ('c2', -0.43475341796875, None)]),
 'disliked': ([0.4267243444919586,
               0.02768006920814514,
               -0.7224131226539612,
               0.5433778166770935],
              [('c5', 0.7677679061889648, None),
               ('c1', 0.5842025876045227, None),
               ('c3', -0.13570329546928406, None),
               ('c4', -0.16496670246124268, None)]),
 'disliked_w03': ([0.7719398140907288,
                   0.15650981664657593,
                   0.5121603608131409,
                   -0.34249866008758545],
                  [('c4', 0.8383070230484009, 'h4'),
                   ('c3', -0.004847094416618347, 'h4'),
                   ('c1', -0.12455418705940247, 'h4'),
                   ('c2', -0.46636849641799927, 'h4')]),
 'cancelled': ([0.13296039402484894,
                -0.49292629957199097,
                0.8528922200202942,
                0.10917885601520538],
               [('c3', 0.743097186088562, 'h1'),
                ('c2', 0.1788911670446396, 'h1'),
                ('c4', 0.08296512067317963, 'h1'),
                ('c5', -0.24082045257091522, 'h1')])}

PINNED_EMBEDDING = {'mixed': {'c1': -0.1600399762392044,
           'c2': -0.11604952812194824,
           'c3': 0.5828740000724792,
           'c9': -1.0},
 'disliked': {'c1': -0.009319987148046494,
              'c2': 0.141486257314682,
              'c3': 0.16066575050354004,
              'c9': -1.0},
 'neutral': {'c1': -0.32215002179145813,
             'c2': -0.25797000527381897,
             'c3': 0.3819950222969055,
             'c9': -1.0},
 'liked': {'c1': 0.3615000247955322,
           'c2': -0.2821040451526642,
           'c3': -0.2409050017595291,
           'c9': -1.0},
 'cancelled': {'c1': 0.0, 'c2': 0.0, 'c3': 0.0, 'c9': -1.0}}


@pytest.mark.parametrize("name", list(SEMANTIC))
def test_semantic_retrieval_is_bit_identical_to_the_old_rule(name: str) -> None:
    query, found = semantic(name)
    want_query, want_found = PINNED_SEMANTIC[name]
    assert bits(query) == bits(want_query)
    assert found == want_found


@pytest.mark.parametrize("name", list(PROFILE))
def test_profile_retrieval_is_bit_identical_to_the_old_rule(name: str) -> None:
    query, found = profile(name)
    want_query, want_found = PINNED_PROFILE[name]
    assert bits(query) == bits(want_query)
    assert found == want_found


@pytest.mark.parametrize("name", list(EMBEDDING))
def test_embedding_scores_are_bit_identical_to_the_old_rule(name: str) -> None:
    assert embedding(name) == PINNED_EMBEDDING[name]


# ---- the rule itself --------------------------------------------------------------------


def vec(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=np.float32)


def test_taste_is_mean_liked_minus_weighted_mean_disliked() -> None:
    got = taste([vec(1, 0), vec(0, 1)], [vec(2, 2)], dislike_weight=0.5)
    assert got.tolist() == [-0.5, -0.5]
    assert taste([], [vec(2, 0)]).tolist() == [-1.0, 0.0]  # no likes: away from zero
    assert taste([vec(3, 4)], [], extra=[vec(1, 1)]).tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match="no liked"):
        taste([], [])


def test_taste_vector_is_unit_length_and_falls_back() -> None:
    assert taste_vector([vec(3, 4)], []).tolist() == pytest.approx([0.6, 0.8])
    # only dislikes: straight away from them, whatever the weight
    assert taste_vector([], [vec(0, 2)], dislike_weight=0.1).tolist() == [0.0, -1.0]
    # the dislikes cancel the likes exactly: the likes alone
    assert taste_vector([vec(1, 0)], [vec(2, 0)]).tolist() == [1.0, 0.0]
    called: list[bool] = []

    def neutral() -> np.ndarray:
        called.append(True)
        return vec(0, 1)

    assert taste_vector([vec(1, 0)], [], fallback=neutral).tolist() == [1.0, 0.0]
    assert not called  # the fallback is only computed when needed
    assert taste_vector([], [vec(1, 0)], fallback=neutral, unit_means=True).tolist() == (
        pytest.approx([-0.4472136, 0.8944272]))
    with pytest.raises(ValueError):
        taste_vector([], [])


def test_nearest_is_the_largest_dot_product_first_on_ties() -> None:
    ids = ["x", "y", "z"]
    matrix = stack([vec(1, 0), vec(0, 1), vec(0, 1)])
    assert nearest(ids, matrix, vec(0.1, 0.9)) == "y"
    assert nearest(ids, matrix, vec(1, 0)) == "x"
    assert nearest([], stack([]), vec(1, 0)) is None
