"""NIR's three steps with the LLM scripted at the client boundary: order, what flows from
step to step, labels back to ids, re-asks and fallbacks, and the per-step trace."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from jinja2 import UndefinedError

from recagent.errors import ResponseError
from recagent.gate import assemble
from recagent.llm.prompts import PromptLibrary
from recagent.rank.nir import PREFERENCES_MAX_CHARS, NIRRanker
from recagent.recommender import Recommender
from recagent.types import Candidate, Interaction, Item, UserHistory
from retrieval.embeddings import OnnxEmbedder
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient


def item(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


HISTORY = [(Interaction(item_id=str(i), liked=True), item(i)) for i in (100, 101, 102, 103)]
CANDIDATES = [Candidate(item=item(i), rank=n, score=1 - n / 10, nearest_history_id="100")
              for n, i in enumerate([11, 12, 13, 14, 15])]
SUMMARY = "Likes slow space horror from the seventies"


def prefs(text: str = SUMMARY) -> str:
    return json.dumps({"preferences": text})


def reps(*labels: str) -> str:
    return json.dumps({"representative": list(labels)})


def ranking(*labels: str, explain: bool = True) -> str:
    return json.dumps({"ranking": [{"id": lab, **({"reason": f"like {lab}"} if explain else {})}
                                   for lab in labels]})


def nir(client: ScriptedClient, **kw: Any) -> NIRRanker:
    return NIRRanker(client, PromptLibrary(), **kw)


def user_text(client: ScriptedClient, n: int) -> str:
    return str(client.requests[n]["messages"][-1]["content"])


def test_three_steps_in_order_with_each_answer_flowing_into_the_next() -> None:
    client = ScriptedClient(prefs(), reps("H3", "h1"), ranking("C", "A"))
    result = nir(client).rank(HISTORY, CANDIDATES, 2)
    assert len(client.requests) == 3
    step1, step2, step3 = (user_text(client, n) for n in range(3))
    # 1: the history only, no candidates; a bounded string schema
    assert "Movie 100" in step1 and "Movie 103" in step1 and "Movie 11" not in step1
    assert client.requests[0]["schema"]["properties"]["preferences"]["maxLength"] == \
        PREFERENCES_MAX_CHARS
    # 2: labelled history plus the step-1 summary; labels pinned and the list bounded
    assert "[H1] Movie 100" in step2 and "[H4] Movie 103" in step2 and SUMMARY in step2
    chosen = client.requests[1]["schema"]["properties"]["representative"]
    assert chosen["items"]["enum"] == ["H1", "H2", "H3", "H4"] and chosen["maxItems"] == 4
    # 3: the summary and only the chosen history items (H3 before H1), then the candidates
    assert SUMMARY in step3
    assert step3.index("Movie 102") < step3.index("Movie 100")
    assert "Movie 101" not in step3 and "Movie 103" not in step3
    assert "[A] Movie 11" in step3 and "[E] Movie 15" in step3
    assert client.requests[2]["schema"]["properties"]["ranking"]["maxItems"] == 2
    # step-3 labels back to candidate ids, reasons kept
    assert result.order == [("13", "like C"), ("11", "like A")] and result.unknown == []


def test_unknown_step3_labels_are_kept_aside_and_the_facade_repairs() -> None:
    client = ScriptedClient(prefs(), reps("H2"), ranking("Z", "B", "B"))
    result = nir(client).rank(HISTORY, CANDIDATES, 3)
    assert result.order == [("12", "like B"), ("12", "like B")] and result.unknown == ["Z"]
    items, repairs = assemble(result.order, CANDIDATES, set(), 3, {"100": "Movie 100"})
    assert [i.item_id for i in items] == ["12", "11", "13"]
    assert any(r.kind == "duplicate" for r in repairs)


def test_per_step_trace_and_the_request_summary() -> None:
    client = ScriptedClient(prefs(), reps("H1"), ranking("B", "A"))
    inv = nir(client).rank(HISTORY, CANDIDATES, 2).invocation
    assert [s.template for s in inv.steps] == ["nir_preferences", "nir_representative",
                                               "nir_rank"]
    assert [s.raw for s in inv.steps] == [prefs(), reps("H1"), ranking("B", "A")]
    assert len({s.template_hash for s in inv.steps}) == 3
    assert all(len(s.template_hash) == 12 and s.attempts == 1 and s.fallback is None
               and s.usage.prompt_tokens == 100 and s.latency_s == pytest.approx(0.01)
               for s in inv.steps)
    assert inv.template == "nir_preferences+nir_representative+nir_rank"
    assert inv.usage.prompt_tokens == 300 and inv.usage.completion_tokens == 60
    assert inv.latency_s == pytest.approx(0.03) and inv.attempts == 1
    assert inv.raw == ranking("B", "A") and inv.messages == inv.steps[2].messages


def test_bad_step1_is_reasked_once_then_used() -> None:
    client = ScriptedClient("I think they like horror", prefs(), reps("H1"), ranking("A"))
    inv = nir(client).rank(HISTORY, CANDIDATES, 1).invocation
    assert len(client.requests) == 4
    assert "not valid" in user_text(client, 1)
    assert SUMMARY in user_text(client, 2) and SUMMARY in user_text(client, 3)
    assert inv.steps[0].attempts == 2 and inv.steps[0].fallback is None
    assert inv.attempts == 2  # a re-ask happened somewhere: counted like the listwise one


def test_unusable_step1_falls_back_to_no_summary_and_ranking_goes_on() -> None:
    client = ScriptedClient("nope", '{"preferences": "   "}', reps("H4"), ranking("D"))
    result = nir(client).rank(HISTORY, CANDIDATES, 1)
    assert result.order == [("14", "like D")]
    for n in (2, 3):
        assert "preferences" not in user_text(client, n)
    step1 = result.invocation.steps[0]
    assert step1.attempts == 2 and step1.fallback is not None
    assert "no preference summary" in step1.fallback


def test_invented_history_labels_are_reasked_then_fall_back_to_the_most_recent() -> None:
    client = ScriptedClient(prefs(), reps("H9"), reps("X"), ranking("A"))
    result = nir(client, n_representative=2).rank(HISTORY, CANDIDATES, 1)
    assert "no history label" in user_text(client, 2)
    step3 = user_text(client, 3)
    assert step3.index("Movie 103") < step3.index("Movie 102")  # most recent first
    assert "Movie 101" not in step3 and "Movie 100" not in step3
    assert result.invocation.steps[1].fallback is not None
    assert "2 most recent" in result.invocation.steps[1].fallback
    assert result.order == [("11", "like A")]


def test_step3_failing_twice_raises_like_the_listwise_ranker() -> None:
    client = ScriptedClient(prefs(), reps("H1"), "A, B", '{"rank": []}')
    with pytest.raises(ResponseError) as info:
        nir(client).rank(HISTORY, CANDIDATES, 2)
    assert info.value.raw == '{"rank": []}' and info.value.attempts == 2


def test_explain_off_asks_for_letters_only_in_step3() -> None:
    client = ScriptedClient(prefs(), reps("H1"), ranking("B", "D", explain=False))
    result = nir(client, explain=False).rank(HISTORY, CANDIDATES, 2)
    entry = client.requests[2]["schema"]["properties"]["ranking"]["items"]
    assert entry["required"] == ["id"] and "reason" not in entry["properties"]
    assert '"reason"' not in user_text(client, 2)
    assert result.order == [("12", None), ("14", None)]


def test_short_histories_skip_the_steps_that_have_nothing_to_do() -> None:
    client = ScriptedClient(prefs(), ranking("A"))
    one = nir(client).rank(HISTORY[:1], CANDIDATES, 1)
    assert [s.template for s in one.invocation.steps] == ["nir_preferences", "nir_rank"]
    assert "Movie 100" in user_text(client, 1)  # the single item is the representative one
    client = ScriptedClient(ranking("A"))
    cold = nir(client).rank([], CANDIDATES, 1)
    assert [s.template for s in cold.invocation.steps] == ["nir_rank"]
    assert "no history yet" in user_text(client, 0)


@pytest.mark.parametrize("explain", [True, False])
def test_nir_templates_render_with_strict_undefined(explain: bool) -> None:
    library = PromptLibrary()
    rows = [{"label": "H1", "text": "Alien (1979)", "feeling": "liked"}]
    for preferences, representative in itertools.product(["", "space"], [[], rows]):
        prompts = [
            library.render("nir_preferences", history=rows, max_chars=100),
            library.render("nir_representative", history=rows, preferences=preferences, n=1),
            library.render("nir_rank", preferences=preferences, representative=representative,
                           candidates=[{"label": "A", "text": "Aliens"}], k=1, explain=explain),
        ]
        for prompt in prompts:
            assert [m["role"] for m in prompt.messages] == ["system", "user"]
            assert len(prompt.template_hash) == 12
        assert ('"reason"' in prompts[2].messages[-1]["content"]) is explain
    with pytest.raises(UndefinedError):
        library.render("nir_rank", preferences="", representative=[], k=1, explain=True)


# ---- through the facade, on a real Chroma store ---------------------------------------------

@pytest.fixture(scope="module")
def store(embedder: OnnxEmbedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    s = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("chroma"), name="nir")
    s.ingest([item(i) for i in (100, 101, 102, 103, 11, 12, 13, 14, 15)])
    return s


def test_recommender_takes_the_nir_ranker_unchanged(store: CatalogStore) -> None:
    client = ScriptedClient(prefs(), reps("H2", "H1"), ranking("C", "Z", "A"))
    rec = Recommender(store, SemanticRetriever(store), nir(client))
    out = rec.recommend(UserHistory.from_ids(["100", "101", "102", "103"]), k=3,
                        candidates=CANDIDATES)
    assert [i.item_id for i in out.items][:2] == ["13", "11"]
    assert not out.degraded and out.trace.attempts == 1
    assert any(r.kind == "unknown_label" and r.item_id == "Z"  # as for listwise answers
               for r in out.trace.repairs)
    assert out.trace.usage.prompt_tokens == 300
    failing = Recommender(store, SemanticRetriever(store),
                          nir(ScriptedClient(prefs(), reps("H1"), "x", "y")))
    degraded = failing.recommend(UserHistory.from_ids(["100", "101"]), k=2,
                                 candidates=CANDIDATES)
    assert degraded.degraded and degraded.trace.degraded_reason == "parse"
