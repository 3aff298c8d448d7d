"""Probe case 1: a long catalog title froze the process (catastrophic backtracking in the
checker's 'you watched <item>' rule over the spaces left where a title matched). Each case
runs in a child process killed after a generous wall clock: a hang fails the test, and no
timing is asserted."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

KILL_AFTER_S = 120

CASE = textwrap.dedent("""
    from recagent.explain import Explainer
    from recagent.explain.checker import _DID_ITEM, _ITEM, Checker
    from recagent.types import Candidate, Evidence, Interaction, Item

    title = {title}
    liked = Item(id="2", title="Heat (1995)", text="Heat", metadata={{"genres": "Action"}})
    long = Item(id="1", title=title, text=title[:100], metadata={{"genres": "Drama"}})
    evidence = Evidence(item_id="1", title=title, genres=["Drama"])
    checker = Checker(["Drama", "Action"], [title, "Heat (1995)"])
    failures = checker.check(f"You liked Heat (1995), so {{title}} is close in content.",
                             evidence, [liked])
    assert failures == [], failures
    said = checker.check(f"You already watched {{title}}.", evidence, [liked])
    assert [f.kind for f in said] == ["claims_seen"], said
    # the rule itself, on the worst text it can meet: the marker, then a long run of spaces
    assert _DID_ITEM.search(_ITEM + " " * 200_000 + "x") is None
    explained = Explainer().explain(
        [Candidate(item=long, rank=0, score=1.0, scores_by_source={{"semantic": 1.0}},
                   nearest_history_id="2")],
        [(Interaction(item_id="2", liked=True), liked)])
    assert explained.sentences and explained.records[0].kind == "template"
    print("ok")
""")


@pytest.mark.parametrize("title", [
    '"T" * 1_000_000', '" ".join(f"Tea{n}" for n in range(20_000))',
    '" ".join(f"W{n}" for n in range(5_000)) + " (1995)"'])
def test_the_checker_answers_on_long_titles(title: str) -> None:
    """`title`: a Python expression (a 1 MB argument is too long for a command line)."""
    done = subprocess.run([sys.executable, "-c", CASE.format(title=title)],
                          capture_output=True, text=True, timeout=KILL_AFTER_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
