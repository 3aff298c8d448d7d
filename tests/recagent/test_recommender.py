"""The facade on a real embedded Chroma; the LLM is scripted at the client boundary."""

from __future__ import annotations

import asyncio
import json

import pytest

from recagent.errors import ConfigError, TransportError, UnknownItemError
from recagent.explain import Explainer
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.types import Interaction, Item, UserHistory
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient
from tests.faultserver import fault_server

MOVIES = [
    ("1", "Alien (1979)", "Sci-Fi horror in space"),
    ("2", "Aliens (1986)", "Sci-Fi action sequel with space marines"),
    ("3", "Predator (1987)", "Action sci-fi hunter in the jungle"),
    ("4", "The Thing (1982)", "Sci-Fi horror in Antarctica"),
    ("5", "Toy Story (1995)", "Animated children's comedy about toys"),
    ("6", "Babe (1995)", "Children's comedy about a pig"),
    ("7", "Heat (1995)", "Crime thriller, cops and robbers"),
    ("8", "Fargo (1996)", "Crime comedy in the snow"),
    ("9", "Star Wars (1977)", "Space opera adventure"),
    ("10", "Blade Runner (1982)", "Sci-Fi noir with replicants"),
]


@pytest.fixture(scope="module")
def store(embedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    s = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("chroma"), name="movies")
    s.ingest([Item(id=i, title=t, text=f"{t}. {d}.") for i, t, d in MOVIES])
    return s


def make(store: CatalogStore, *replies, n: int = 6) -> tuple[Recommender, ScriptedClient]:
    client = ScriptedClient(*replies)
    ranker = ListwiseRanker(client, PromptLibrary())
    return Recommender(store, SemanticRetriever(store), ranker, n_candidates=n), client


def pick(*labels: str) -> str:
    return json.dumps({"ranking": [{"id": lab, "reason": f"reason {lab}"} for lab in labels]})


HISTORY = UserHistory.from_ids(["1", "4"])


def test_llm_order_is_used_and_explained_from_evidence_not_its_reasons(store) -> None:
    rec, client = make(store, pick("C", "A", "B"))
    out = rec.recommend(HISTORY, k=3)
    prompt = client.requests[0]["messages"][-1]["content"]
    candidates = [line[4:] for line in prompt.splitlines() if line.startswith("[")]
    titles = [i.title for i in out.items]
    assert titles[0] in candidates[2] and titles[1] in candidates[0]
    assert all(i.source == "llm" for i in out.items)
    # the ranker's reasons are ungrounded: never shown; templates explain from evidence
    assert not any(i.explanation.startswith("reason") for i in out.items)
    assert len({i.explanation for i in out.items}) == 3
    for item in out.items:
        assert item.evidence is not None and item.evidence.item_id == item.item_id
        assert item.evidence.sources == ["semantic"]
        assert item.title in item.explanation
        cited = [link.title for link in item.evidence.because]
        assert cited and cited[0] in {"Alien (1979)", "The Thing (1982)"}
        assert cited[0] in item.explanation
    assert [r.item_id for r in out.trace.explanations] == [i.item_id for i in out.items]
    assert [r.kind for r in out.trace.explanations] == ["template"] * 3
    assert out.trace.explanation_counts.template == 3 and out.trace.explain_call is None
    assert not out.degraded and not out.trace.repaired
    assert out.trace.template == "rank_zero_shot" and out.trace.attempts == 1
    assert out.trace.usage.prompt_tokens == 100


def test_an_llm_explainer_words_the_list_and_its_claims_are_checked(store) -> None:
    client = ScriptedClient(
        pick("A", "B"),
        lambda messages: json.dumps({"explanations": [
            {"id": "1", "sentence": "A tense one for you, as a fan of Alien."},
            {"id": "2", "sentence": "You already watched this one, like Alien."}]}))
    rec = Recommender(store, SemanticRetriever(store), ListwiseRanker(client, PromptLibrary()),
                      n_candidates=6, explainer=Explainer(client, PromptLibrary()))
    out = rec.recommend(HISTORY, k=2)
    assert [r.kind for r in out.trace.explanations] == ["llm", "replaced"]
    assert out.items[0].explanation == "A tense one for you, as a fan of Alien."
    assert [f.kind for f in out.trace.explanations[1].failures] == ["claims_seen"]
    assert out.items[1].title in out.items[1].explanation  # the template instead
    counts = out.trace.explanation_counts
    assert (counts.llm, counts.replaced, counts.template) == (1, 1, 0)
    assert out.trace.explain_call is not None
    assert out.trace.explain_call.template == "explain_items"
    # trace.usage sums every call of the request: the ranking and the wording call
    assert len(client.requests) == 2 and out.trace.usage.prompt_tokens == 200
    assert not out.degraded  # a refused sentence is the checker's work, not a failed step


def test_the_explainer_makes_no_call_after_the_ranker_timed_out(store) -> None:
    from recagent.errors import DeadlineError
    client = ScriptedClient(DeadlineError("too slow"))
    rec = Recommender(store, SemanticRetriever(store), ListwiseRanker(client, PromptLibrary()),
                      n_candidates=6, explainer=Explainer(client, PromptLibrary()))
    out = rec.recommend(HISTORY, k=2)
    assert out.trace.degraded_reason == "deadline" and len(client.requests) == 1
    assert [r.kind for r in out.trace.explanations] == ["template", "template"]


def test_transport_failure_degrades_to_retrieval_order_and_is_counted(store) -> None:
    rec, _ = make(store, TransportError("connection refused"))
    out = rec.recommend(HISTORY, k=4)
    assert out.degraded and out.trace.degraded_reason == "transport"
    assert out.trace.degraded_detail == "TransportError: connection refused"
    baseline = Recommender(store, SemanticRetriever(store), None, n_candidates=6)
    expected = [i.item_id for i in baseline.recommend(HISTORY, 4).items]
    assert [i.item_id for i in out.items] == expected
    assert all(i.explanation and i.source == "retrieval" for i in out.items)
    assert rec.stats.degraded == 1 and rec.stats.requests == 1


def test_unparseable_twice_degrades_with_reask_counted(store) -> None:
    rec, client = make(store, "I like turtles", "still not json")
    out = rec.recommend(HISTORY, k=3)
    assert out.degraded and out.trace.degraded_reason == "parse"
    assert (out.trace.degraded_detail or "").endswith("(after 2 attempt(s))")
    assert len(client.requests) == 2 and len(out.items) == 3


def test_only_invalid_labels_is_degraded_not_silent(store) -> None:
    rec, _ = make(store, pick("Q", "R", "S"))
    out = rec.recommend(HISTORY, k=3)
    assert out.degraded and out.trace.degraded_reason == "no_valid_candidate"
    assert out.trace.degraded_detail == "the model named no valid candidate"
    # three unknown labels; no top-up repair: the model's order was empty, so it is degraded
    assert [(r.kind, r.item_id) for r in out.trace.repairs] == [
        ("unknown_label", "Q"), ("unknown_label", "R"), ("unknown_label", "S")]


def test_any_other_ranker_failure_is_an_error_kind(store) -> None:
    class Broken:
        def rank(self, *args: object) -> None:
            raise KeyError("boom")

    rec = Recommender(store, SemanticRetriever(store), Broken(), n_candidates=6)
    out = rec.recommend(HISTORY, k=2)
    assert out.degraded and out.trace.degraded_reason == "error"
    assert out.trace.degraded_detail == "KeyError: 'boom'"


def test_limits_drop_items_and_the_list_is_topped_up(store) -> None:
    rec, _ = make(store, pick("A", "B", "C"))
    plain = [i.item_id for i in Recommender(store, SemanticRetriever(store), None,
                                            n_candidates=6).recommend(HISTORY, 6).items]
    banned = plain[1]
    out = rec.recommend(HISTORY, k=3,
                        limits=lambda item: ["is banned"] if item.id == banned else [])
    ids = [i.item_id for i in out.items]
    assert banned not in ids and len(ids) == 3
    violated = [r for r in out.trace.repairs if r.kind == "violates"]
    assert [r.item_id for r in violated] == [banned] and "is banned" in violated[0].detail
    assert out.trace.repaired and rec.stats.repaired == 1


@pytest.mark.parametrize("labels", [("A", "A", "A"), ("F", "E"), ("B",)])
def test_never_seen_never_duplicate_always_k(store, labels) -> None:
    rec, _ = make(store, pick(*labels))
    history = UserHistory(interactions=[Interaction(item_id="1", rating=5),
                                        Interaction(item_id="4", rating=1)])
    out = rec.recommend(history, k=5)
    ids = [i.item_id for i in out.items]
    assert len(ids) == 5 == len(set(ids))
    assert not {"1", "4"} & set(ids)
    assert set(ids) <= {i for i, _, _ in MOVIES}


def test_fixed_candidates_drop_seen_items(store) -> None:
    from recagent.types import Candidate
    fixed = [Candidate(item=store.get([i])[i], rank=n, score=0.0)
             for n, i in enumerate(["1", "5", "6", "7"])]
    rec, _ = make(store, pick("A", "B"))
    out = rec.recommend(HISTORY, k=2, candidates=fixed)
    assert [i.item_id for i in out.items] == ["5", "6"]


def test_bad_input_is_a_clear_error(store) -> None:
    rec, client = make(store)
    with pytest.raises(UnknownItemError, match="999"):
        rec.recommend(UserHistory.from_ids(["1", "999"]), k=3)
    with pytest.raises(ConfigError, match="k must be"):
        rec.recommend(HISTORY, k=7)
    assert client.requests == []


def test_async_twin_gives_the_same_answer(store) -> None:
    rec, _ = make(store, pick("B", "A"), pick("B", "A"))
    sync = rec.recommend(HISTORY, k=2)
    out = asyncio.run(rec.arecommend(HISTORY, k=2))
    assert [i.item_id for i in out.items] == [i.item_id for i in sync.items]


def test_cli_history_parsing() -> None:
    from recagent.cli.commands import parse_history
    h = parse_history("1, 50=2,181=4.5")
    assert [i.item_id for i in h.interactions] == ["1", "50", "181"]
    assert [i.polarity for i in h.interactions] == [1, -1, 1]
    for bad in ("1=x", "1=0", "1=nan", "1=6", "1=inf"):  # the README says 1-5
        with pytest.raises(ConfigError, match=r"item 1 must be a number from 1 to 5"):
            parse_history(bad)
    with pytest.raises(ConfigError, match="more than once"):
        parse_history("1,1")
    with pytest.raises(ConfigError, match="empty entry"):
        parse_history("1,,2")




def test_feedback_changes_the_very_next_list(store: CatalogStore) -> None:
    rec = Recommender(store, SemanticRetriever(store), None, n_candidates=8)
    user = UserHistory.from_ids(["9", "1"], user_id="u1")  # Star Wars, Alien
    before = [i.item_id for i in rec.recommend(user, k=8).items]
    scores_before = {c.item.id: c.score for c in rec.retriever.retrieve(user, 8)}
    assert "2" in before  # Aliens, a sci-fi horror sequel, is proposed
    rec.feedback("u1", "2", liked=False)
    after = [i.item_id for i in rec.recommend(user, k=7).items]
    assert "2" not in after  # the disliked item never comes back
    scores_after = {c.item.id: c.score for c in rec.retriever.retrieve(rec.with_feedback(user), 7)}
    drop = {i: scores_before[i] - scores_after[i] for i in scores_after}
    # items like Aliens (The Thing, Predator) fall more than children's comedies
    assert min(drop["4"], drop["3"]) > max(drop["5"], drop["6"]) > 0
    other = rec.recommend(UserHistory.from_ids(["9", "1"], user_id="u2"), k=8)
    assert "2" in [i.item_id for i in other.items]  # other users are untouched
    with pytest.raises(UnknownItemError):
        rec.feedback("u1", "nope", liked=True)
    with pytest.raises(ConfigError, match="user id"):
        rec.feedback("", "2", liked=True)


def test_feedback_replaces_an_earlier_interaction_and_is_newest(store: CatalogStore) -> None:
    rec = Recommender(store, SemanticRetriever(store), None)
    rec.feedback("u", "1", liked=False)
    rec.feedback("u", "5", liked=True)
    history = UserHistory(user_id="u", interactions=[
        Interaction(item_id="1", rating=5, ts=10), Interaction(item_id="9", rating=4, ts=20)])
    merged = rec.with_feedback(history)
    assert [(i.item_id, i.polarity, i.ts) for i in merged.chronological()] == \
        [("9", 1, 20), ("1", -1, 21), ("5", 1, 22)]


def test_a_hung_llm_server_degrades_at_the_deadline(store: CatalogStore) -> None:
    # A real client against a loopback server that never answers: the answer is the
    # retrieval order, flagged with reason "deadline", and counted.
    with fault_server("hang") as server:
        client = OpenAIClient(base_url=server.url, model="m", deadline_s=1.0)
        rec = Recommender(store, SemanticRetriever(store),
                          ListwiseRanker(client, PromptLibrary()), n_candidates=6)
        out = rec.recommend(HISTORY, k=3)
    assert out.degraded and out.trace.degraded_reason == "deadline"
    assert len(out.items) == 3 and rec.stats.degraded == 1


def test_a_setup_error_from_the_server_is_raised_not_degraded(store: CatalogStore) -> None:
    # 404: the model name is wrong. That is the user's configuration (exit 2), not a model
    # failure to hide behind a degraded answer.
    with fault_server("404") as server:
        client = OpenAIClient(base_url=server.url, model="wrongname")
        rec = Recommender(store, SemanticRetriever(store),
                          ListwiseRanker(client, PromptLibrary()), n_candidates=6)
        with pytest.raises(ConfigError, match="wrongname"):
            rec.recommend(HISTORY, k=3)
