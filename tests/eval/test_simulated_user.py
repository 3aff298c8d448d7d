"""The simulated user never states its target's title (over whole catalogs), and the
leakage guard stops what would."""

from __future__ import annotations

import random

import pytest
from conftest import DATA, needs_data

from eval.simulated_user import (
    LeakGuard,
    RulesUser,
    gives_away,
    pick_opening,
    reveals,
    spoken,
    states_title,
)
from recagent.types import Item
from retrieval.catalog_files import load_movielens
from retrieval.redial_files import load_redial_catalog


def _every_message_is_title_free(items: list[Item]) -> int:
    rng = random.Random(7)
    checked = 0
    for target in items:
        others = rng.sample(items, 6)
        user = RulesUser(target, pick_opening([*others, target], target, rng, 0, 3),
                         random.Random(target.id))
        for turn in range(5):
            message = user.message(turn)
            assert not states_title(message, target.title), (target.title, message)
            assert target.id not in {i.id for i in user.opening}
            checked += 1
    return checked


@needs_data
def test_never_states_the_title_over_movielens() -> None:
    assert _every_message_is_title_free(load_movielens(DATA / "ml-100k")) == 5 * 1682


@pytest.mark.skipif(not (DATA / "redial" / "id2info.json").is_file(), reason="no ReDial data")
def test_never_states_the_title_over_redial() -> None:
    items = load_redial_catalog(DATA / "redial")
    assert _every_message_is_title_free(items) == 5 * len(items)


def test_reveals_one_attribute_per_turn_and_drops_what_names_the_film() -> None:
    ray = Item(id="1", title="Ray (2004)", text="Ray (2004). The life of a musician.",
               metadata={"year": 2004, "genres": "Biography|Music", "director": "Taylor Hackford",
                         "star": "Ray Charles Robinson Jr.|Jamie Foxx"})
    said = reveals(ray, random.Random(0))
    assert said[1] == "Something from the 2000s."
    assert said[2] == "Directed by Taylor Hackford, ideally."
    assert not any("Ray Charles" in s for s in said)  # the star line would say "Ray"
    assert any(s.startswith("Something about musician") for s in said)
    user = RulesUser(ray, [], random.Random(0))
    assert user.message(0).startswith("Can you recommend a movie?")
    assert user.message(1).startswith("I've seen the first one.")


def test_a_sequel_is_never_named_for_its_original() -> None:
    alien, aliens = (Item(id="1", title="Alien (1979)", text=""),
                     Item(id="2", title="Alien: Resurrection (1997)", text=""))
    assert gives_away(aliens, alien)
    assert pick_opening([aliens], alien, random.Random(0), 3, 3) == []
    assert spoken("Usual Suspects, The (1995)") == "The Usual Suspects (1995)"


def test_the_leakage_guard_replaces_what_reaches_the_threshold() -> None:
    guard = LeakGuard()
    title = "Usual Suspects, The (1995)"
    leak = guard.check("You know, the one with the usual suspect lineup", title, "fallback")
    assert leak.leaked and leak.message == "fallback" and leak.score >= 60
    near = guard.check("Something with unusual suspense", title, "fallback")
    assert near.leaked  # partial_ratio reaches 60 on near-spellings too: replaced
    fine = guard.check("A crime film from the nineties, please.", title, "fallback")
    assert not fine.leaked and fine.message.startswith("A crime film")
