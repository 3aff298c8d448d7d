"""The hybrid pipeline in the evaluation: its config, per-source recall on hand-made data,
and the harness on the small real catalog (collaborative sources see training data only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from eval import config as eval_config
from eval.baselines import EmbeddingScorer
from eval.config import EvalConfig, load_config
from eval.datasets import Dataset, Rating
from eval.harness import EvalResult, Harness
from eval.protocols import (
    FULL,
    FUSION,
    PROTOCOL_VERSION,
    Case,
    LeaveOneOut,
    Split,
    retrieval_history,
    to_history,
)
from eval.report import markdown
from eval.results import UserResult
from eval.summary import summarize
from recagent.errors import ConfigError
from recagent.types import Item
from recagent.wiring import build_retriever
from retrieval.collaborative import PopularityRetriever
from retrieval.embeddings import OnnxEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.store import CatalogStore

PIPELINE = """
name = "t"
[dataset]
kind = "ml-100k"
path = "unused"
[protocol]
kind = "pipeline"
"""


def load(tmp_path: Path, text: str) -> EvalConfig:
    path = tmp_path / "c.toml"
    path.write_text(PIPELINE + text)
    return load_config(path)


def test_hybrid_config_shape_and_errors(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'retriever = "hybrid"\n[protocol.hybrid]\n'
                         'weights = { semantic = 1, cooccurrence = 2 }\nk_rrf = 10\n')
    assert cfg.protocol.hybrid_or_default.weights == {"semantic": 1.0, "cooccurrence": 2.0}
    default = load(tmp_path, 'retriever = "hybrid"\n').protocol.hybrid_or_default
    assert (default.weights, default.k_rrf, default.depth) == (
        {"semantic": 1.0, "cooccurrence": 1.0, "popularity": 1.0}, 60, 100)
    bad = {
        'retriever = "hybrid"\n[protocol.hybrid]\nweight = { semantic = 1 }\n': "weight",
        'retriever = "hybrid"\n[protocol.hybrid]\nweights = { semantic = 1, bpr = 1 }\n':
            "bpr",
        'retriever = "hybrid"\n[protocol.hybrid]\nweights = { semantic = 1, popularity = -1 }\n':
            "popularity",
        'retriever = "hybrid"\n[protocol.hybrid]\nweights = { cooccurrence = 1 }\n':
            "semantic must be > 0",
        '[protocol.hybrid]\nweights = { semantic = 1 }\n': 'needs retriever = "hybrid"',
        'retriever = "bm25"\n': "retriever",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            load(tmp_path, text)
    with pytest.raises(ValueError, match="pipeline protocol only"):
        EvalConfig.model_validate({"name": "t", "dataset": {"kind": "ml-100k", "path": "x"},
                                   "protocol": {"kind": "llmrank", "retriever": "hybrid"}})


def test_fingerprints_follow_the_protocol_rules_and_hybrid_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load(tmp_path, "")
    protocol = cfg.protocol.model_dump(mode="json")
    del protocol["retriever"], protocol["hybrid"]
    del protocol["cut"], protocol["split_quantile"]  # at their defaults: fingerprints stay
    blob = json.dumps([cfg.seed, cfg.dataset.model_dump(mode="json"), protocol,
                       {"protocol_version": PROTOCOL_VERSION}, "v"], sort_keys=True, default=str)
    assert cfg.fingerprint("v") == hashlib.sha256(blob.encode()).hexdigest()[:10]
    # results stored under the earlier rules (no version in the blob) are never reused
    old = json.dumps([cfg.seed, cfg.dataset.model_dump(mode="json"), protocol, "v"],
                     sort_keys=True, default=str)
    assert cfg.fingerprint("v") != hashlib.sha256(old.encode()).hexdigest()[:10]
    with monkeypatch.context() as patched:
        patched.setattr(eval_config, "PROTOCOL_VERSION", PROTOCOL_VERSION + 1)
        changed = cfg.fingerprint("v")
    assert changed != cfg.fingerprint("v")
    plain = load(tmp_path, 'retriever = "hybrid"\n').fingerprint("v")
    explicit = load(tmp_path, 'retriever = "hybrid"\n[protocol.hybrid]\n'
                              'weights = { semantic = 1, cooccurrence = 1, popularity = 1 }\n')
    other = load(tmp_path, 'retriever = "hybrid"\n[protocol.hybrid]\n'
                           'weights = { semantic = 1, cooccurrence = 1, popularity = 0.5 }\n')
    assert plain == explicit.fingerprint("v") != other.fingerprint("v") != cfg.fingerprint("v")
    assert load(tmp_path, 'cut = "strict"\n').fingerprint("v") != cfg.fingerprint("v")


def test_the_new_sources_are_hybrid_weights(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'retriever = "hybrid"\n[protocol.hybrid]\nweights = { semantic = 0.1, '
                         'sequential = 1, als = 1, recency_knn = 0.25 }\n')
    assert cfg.protocol.hybrid_or_default.weights == {
        "semantic": 0.1, "sequential": 1.0, "als": 1.0, "recency_knn": 0.25}


# ---- recall of each source, over all users ------------------------------------------------

FILL = [f"f{n}" for n in range(60)]


def ranked(target: str, position: int | None) -> tuple[str, ...]:
    """60 ids with the target at `position` (absent when None)."""
    ids = list(FILL)
    if position is not None:
        ids[position] = target
    return tuple(ids)


def test_source_recall_counts_every_user(tmp_path: Path) -> None:
    users = ["u1", "u2", "u3", "u4"]
    cases = [Case(user=u, setting=FULL, history=(Rating(user=u, item="h", rating=5.0, ts=0),),
                  target=f"t{u}", candidates=("f0",)) for u in users]
    rankings = {
        # u1 within 20, u2 within 50 only, u3 missed, u4 got nothing from this source
        "semantic": {"u1": ranked("tu1", 3), "u2": ranked("tu2", 30), "u3": ranked("tu3", None),
                     "u4": ()},
        # u1, u2 within 20 (position 0 and 19), u3 within 50 (49), u4 absent altogether
        FUSION: {"u1": ranked("tu1", 0), "u2": ranked("tu2", 19), "u3": ranked("tu3", 49)},
    }
    cfg = load(tmp_path, 'retriever = "hybrid"\n')
    result = EvalResult(
        config=cfg, dataset=Dataset(name="tiny", ratings=(), items={}),
        loo=LeaveOneOut(splits=[Split(user=u, history=c.history, target=c.target,
                                      seen=frozenset()) for u, c in zip(users, cases,
                                                                        strict=True)],
                        train=[]),
        cases={FULL: cases}, llm_users=[], retrieval={FULL: rankings},
        results={"popularity": {FULL: [UserResult(run="popularity", user=u, setting=FULL,
                                                  history_len=1, ranking=["f0"])
                                       for u in users]}},
    )
    summary = summarize(result)
    entry = summary["populations"]["all"]["settings"]["full"]
    recall = entry["retrieval_sources"]
    assert list(recall) == ["semantic", FUSION]
    assert recall["semantic"] == pytest.approx({"recall@20": 1 / 4, "recall@50": 2 / 4})
    assert recall[FUSION] == pytest.approx({"recall@20": 2 / 4, "recall@50": 3 / 4})
    md = markdown(summary)
    assert "| semantic | 0.2500 | 0.5000 |" in md and "| fusion | 0.5000 | 0.7500 |" in md
    assert "hybrid retriever" in md


# ---- the harness on the small real catalog ------------------------------------------------


def rating(user: str, item: str, ts: int) -> Rating:
    return Rating(user=user, item=item, rating=5.0, ts=ts)


# Each user's last item is the target. s6 is only ever a target (u1's): the training data
# must not hold it, so no collaborative source can propose it to anyone.
HISTORIES = {"u1": ["s1", "s2", "s3", "s6"], "u2": ["h1", "h2", "h4"],
             "u3": ["a1", "a2", "a3"], "u4": ["a1", "a2", "h1"], "u5": ["r1", "r2"],
             "u6": ["h2", "h3", "h5"], "u7": ["h1", "h4", "a1"]}


@pytest.fixture(scope="module")
def store(embedder: OnnxEmbedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path_factory.mktemp("evalhybrid") / "chroma")


def test_harness_builds_hybrid_cases_from_training_data_only(
    store: CatalogStore, mini_items: list[Item], tmp_path: Path
) -> None:
    data = Dataset(name="mini", items={i.id: i for i in mini_items}, ratings=tuple(
        rating(u, item, 10 * n) for u, items in HISTORIES.items() for n, item in enumerate(items)))
    raw: dict[str, Any] = {
        "name": "mini", "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "pipeline", "retriever": "hybrid", "n_candidates": 4, "k": 3,
                     "hybrid": {"weights": {"semantic": 1, "cooccurrence": 1,
                                            "popularity": 0.5}, "depth": 6}},
        "baselines": {"include": ["popularity", "embedding"]},
    }
    harness = Harness(EvalConfig.model_validate(raw), dataset=data, store=store,
                      out=tmp_path, progress=False)
    result = harness.run(None)
    cases = {c.user: c for c in result.cases[FULL]}
    assert set(cases) == set(HISTORIES)
    rankings = result.retrieval[FULL]
    assert set(rankings) == {"semantic", "cooccurrence", "popularity", FUSION}
    assert all(set(per_user) == set(HISTORIES) for per_user in rankings.values())
    for source in ("cooccurrence", "popularity"):
        assert not any("s6" in ids for ids in rankings[source].values()), source
    assert "s6" in rankings["semantic"]["u1"]  # reachable through its text

    retriever = build_retriever(result.config.protocol.retriever_spec, store,
                                [(r.user, r.item) for r in result.loo.train])
    assert isinstance(retriever, HybridRetriever)
    for user, case in cases.items():
        history = {r.item for r in case.history}
        assert len(case.candidates) == 4 and not history & set(case.candidates)
        assert case.retriever == "hybrid"
        assert rankings[FUSION][user][:4] == case.candidates
        # the candidates are exactly what the hybrid retriever proposes for that history
        again = retriever.retrieve(to_history(user, case.history), 4)
        assert tuple(c.item.id for c in again) == case.candidates
        assert case.retrieval_scores == pytest.approx(tuple(c.score for c in again))
        # the embedding baseline scores cosine to the query, not the fused scores
        cosine = EmbeddingScorer(store).score(Case(**{**case.__dict__, "retrieval_scores": ()}))
        assert EmbeddingScorer(store).score(case) == pytest.approx(cosine)

    recall = summarize(result)["populations"]["all"]["settings"]["full"]["retrieval_sources"]
    for source, per_user in rankings.items():
        hits = [cases[u].target in ids[:20] for u, ids in per_user.items()]
        assert recall[source]["recall@20"] == pytest.approx(sum(hits) / len(cases))



def test_harness_with_the_new_sources_excludes_every_prior_item(
    store: CatalogStore, mini_items: list[Item], tmp_path: Path
) -> None:
    ratings = [rating(u, item, 10 * n) for u, items in HISTORIES.items()
               for n, item in enumerate(items)]
    ratings += [Rating(user="u2", item="h3", rating=1.0, ts=5),     # disliked before the cut
                Rating(user="u7", item="h2", rating=3.0, ts=15),    # neutral before the cut
                Rating(user="u3", item="a4", rating=2.0, ts=100)]   # after u3's target
    data = Dataset(name="mini", items={i.id: i for i in mini_items}, ratings=tuple(ratings))
    # popularity at weight 0: measured for the report, never fused
    weights = {"semantic": 0.1, "sequential": 1, "als": 1, "recency_knn": 0.25, "popularity": 0}
    raw: dict[str, Any] = {
        "name": "mini", "seed": 5, "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "pipeline", "retriever": "hybrid", "n_candidates": 4, "k": 3,
                     "hybrid": {"weights": weights, "depth": 6}},
        "baselines": {"include": ["popularity"]},
    }
    result = Harness(EvalConfig.model_validate(raw), dataset=data, store=store, out=tmp_path,
                     progress=False).run(None)
    rankings = result.retrieval[FULL]
    assert set(rankings) == {*weights, FUSION}
    splits = {s.user: s for s in result.loo.splits}
    assert [r.item for r in splits["u2"].prior] == ["h1", "h3", "h2"]
    assert [r.item for r in splits["u2"].history] == ["h1", "h2"]
    assert not any(r.item in {"s6", "a4"} for r in result.loo.train)  # a target, and after one
    rows = [(r.user, r.item, r.rating, r.ts) for r in result.loo.train]
    retriever = build_retriever(result.config.protocol.retriever_spec, store, rows)
    assert isinstance(retriever, HybridRetriever) and "popularity" not in retriever.sources
    popular = [i for i, _ in PopularityRetriever(store, rows).ranked]
    for user, ids in rankings["popularity"].items():
        assert list(ids) == [i for i in popular if i not in {
            r.item for r in splits[user].prior}][:len(ids)]
    for case in result.cases[FULL]:
        split = splits[case.user]
        prior = {r.item for r in split.prior}
        assert case.target not in prior
        for source, per_user in rankings.items():
            assert not prior & set(per_user[case.user]), (source, case.user)
        for source in ("sequential", "als", "recency_knn"):
            assert "s6" not in rankings[source][case.user]
        again = retriever.retrieve(retrieval_history(split, FULL, 50), 4)
        assert tuple(c.item.id for c in again) == case.candidates
        assert all(c.nearest_history_id in prior for c in again if c.nearest_history_id)


def test_equal_inputs_and_own_retrieval_rows_recompute(
    store: CatalogStore, mini_items: list[Item], tmp_path: Path
) -> None:
    from eval.recompute import load_report, mismatches, recompute
    from eval.report import write_report

    ratings = [rating(u, item, 10 * n) for u, items in HISTORIES.items()
               for n, item in enumerate(items)]
    ratings.append(Rating(user="u2", item="h3", rating=1.0, ts=5))  # disliked before the cut
    data = Dataset(name="mini", items={i.id: i for i in mini_items}, ratings=tuple(ratings))
    raw: dict[str, Any] = {
        "name": "mini", "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "pipeline", "retriever": "hybrid", "n_candidates": 4, "k": 3,
                     "hybrid": {"weights": {"semantic": 1, "cooccurrence": 1}, "depth": 6}},
        "baselines": {"include": ["random", "popularity", "nextcount", "recency_knn"],
                      "inputs": "all", "retrieval_rows": True},
    }
    harness = Harness(EvalConfig.model_validate(raw), dataset=data, store=store,
                      out=tmp_path, progress=False)
    result = harness.run(None)
    assert {"popularity_retrieval", "nextcount_retrieval", "recency_knn_retrieval"} <= set(
        result.results) and "random_retrieval" not in result.results  # random ranks no catalog
    splits = {s.user: s for s in result.loo.splits}
    # every rating before the cut, the disliked one too, is what the baselines see
    u2 = next(c for c in result.cases[FULL] if c.user == "u2")
    assert "h3" in {r.item for r in u2.prior} and "h3" not in {r.item for r in u2.history}
    assert harness.scorers["nextcount"].view(u2).history == u2.prior  # type: ignore[attr-defined]
    for r in result.results["nextcount_retrieval"][FULL]:
        assert len(r.ranking) <= 4 and not set(r.ranking) & {x.item for x in splits[r.user].prior}
    summary = summarize(result)
    own = summary["populations"]["all"]["settings"]["full"]["own_retrieval"]
    hits = [splits[r.user].target in r.ranking for r in result.results["nextcount_retrieval"][FULL]]
    assert own["nextcount_retrieval"] == pytest.approx(sum(hits) / len(hits))
    seen = summary["history_seen"]["full"]
    assert "every interaction before the cut" in seen["nextcount"]["what"]
    assert "own top 4" in seen["nextcount_retrieval"]["what"]
    folder = tmp_path / "report"
    write_report(result, summary, folder, "")
    (folder / "config.toml").write_text(json_to_toml(raw))
    assert mismatches(json.loads((folder / "metrics.json").read_text()),
                      recompute(load_report(folder))) == []


def json_to_toml(raw: dict[str, Any]) -> str:
    """The small config above as TOML (recompute reads the report's config.toml)."""
    p, b = raw["protocol"], raw["baselines"]
    return (f'name = "{raw["name"]}"\n[dataset]\nkind = "ml-100k"\npath = "unused"\n'
            f'[protocol]\nkind = "pipeline"\nretriever = "hybrid"\nn_candidates = '
            f'{p["n_candidates"]}\nk = {p["k"]}\n[protocol.hybrid]\ndepth = 6\n'
            'weights = { semantic = 1, cooccurrence = 1 }\n[baselines]\ninclude = '
            f'{json.dumps(b["include"])}\ninputs = "all"\nretrieval_rows = true\n')
