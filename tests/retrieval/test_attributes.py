"""List attributes: a hand-made JSONL catalog through the loader and a real Chroma store,
then the hard filter over what comes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from recagent.errors import DataFormatError
from retrieval.attributes import (
    AttributeFilter,
    filter_ids,
    normalise,
    values,
    violations,
    vocabulary,
)
from retrieval.catalog_files import load_jsonl
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore

ROWS = [
    {"id": "a", "title": "Heat (1995)", "year": 1995, "genres": ["Crime", "Thriller"],
     "director": ["Michael Mann"], "star": ["Al Pacino", "Robert De Niro"]},
    {"id": "b", "title": "Inception (2010)", "year": 2010, "genres": ["Sci-Fi", "Thriller"],
     "director": ["Christopher Nolan"], "star": ["Leonardo DiCaprio"]},
    {"id": "c", "title": "Amélie (2001)", "year": 2001, "genres": ["Comedy", "Romance"],
     "director": ["Jean-Pierre Jeunet"], "star": ["Audrey Tautou"],
     "text": "A shy waitress in Paris decides to change the lives of those around her. " * 40},
    {"id": "d", "title": "The Irishman (2019)", "year": 2019, "genres": ["Crime", "Drama"],
     "director": ["Martin Scorsese"], "star": ["Robert De Niro", "Al Pacino", "Joe Pesci"]},
    {"id": "e", "title": "Untitled", "genres": ["Drama"]},
]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "films.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    return path


def test_lists_round_trip_through_the_store_and_filter(
    catalog: Path, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    items = load_jsonl(catalog)
    store = CatalogStore.open(embedder, path=tmp_path / "chroma")
    store.ingest(items)
    got = store.get([i.id for i in items])
    assert values(got["d"], "star") == ("Robert De Niro", "Al Pacino", "Joe Pesci")
    assert values(got["c"], "director") == ("Jean-Pierre Jeunet",)
    assert len(got["c"].text) > 2000  # the long text is kept whole
    assert "Michael Mann" in got["a"].text  # no text given: the attributes are embedded
    de_niro = AttributeFilter(any_of={"star": ["robert de niro"]})
    assert filter_ids(got, de_niro) == ["a", "d"]
    crime_not_scorsese = AttributeFilter(any_of={"genres": ["crime"]},
                                         none_of={"director": ["Martin Scorsese"]})
    assert filter_ids(got, crime_not_scorsese) == ["a"]
    both = AttributeFilter(all_of={"star": ["Al Pacino", "Joe Pesci"]})
    assert filter_ids(got, both) == ["d"]
    nineties_on = AttributeFilter(year_min=1995, year_max=2010, exclude_ids=frozenset({"a"}))
    assert filter_ids(got, nineties_on) == ["b", "c"]  # "e" has no year: it cannot pass
    assert filter_ids(got, AttributeFilter(any_of={"genres": ["sci fi"]})) == ["b"]
    assert filter_ids(got, AttributeFilter(any_of={"director": ["Jean Pierre Jeunet"]})) == ["c"]
    assert filter_ids(got, AttributeFilter(), ids=["zz", "e", "a", "e"]) == ["e", "a"]


def test_none_of_refuses_unknown_unless_told(catalog: Path) -> None:
    items = {i.id: i for i in load_jsonl(catalog)}
    no_nolan = AttributeFilter(none_of={"director": ["Christopher Nolan"]})
    assert filter_ids(items, no_nolan) == ["a", "c", "d"]
    assert violations(items["e"], no_nolan) == ["has no known director"]
    lenient = no_nolan.model_copy(update={"unknown_passes_none_of": True})
    assert filter_ids(items, lenient) == ["a", "c", "d", "e"]
    assert violations(items["b"], no_nolan) == ["has the excluded director Christopher Nolan"]


def test_vocabulary_and_normalise(catalog: Path) -> None:
    vocab = vocabulary(load_jsonl(catalog), "star")
    assert vocab[normalise("AL PACINO")] == "Al Pacino"
    assert len(vocab) == 5  # Pacino, De Niro, DiCaprio, Tautou, Pesci
    assert normalise("Amélie") == "amelie"


def test_bad_filters_are_refused() -> None:
    with pytest.raises(ValidationError, match="after year_max"):
        AttributeFilter(year_min=2000, year_max=1990)
    with pytest.raises(ValidationError, match="non-empty values"):
        AttributeFilter(any_of={"star": []})


def test_a_list_element_with_the_separator_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "title": "A"}\n{"id": 2, "title": "B", "star": ["X|Y"]}\n')
    with pytest.raises(DataFormatError, match=r"'star'.*may not contain") as e:
        load_jsonl(path)
    assert e.value.path == str(path) and e.value.line == 2
