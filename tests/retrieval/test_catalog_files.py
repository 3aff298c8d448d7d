"""Catalog loaders on the real MovieLens files and on small broken files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import DATA, needs_data

from recagent.errors import ConfigError, DataFormatError
from retrieval.catalog_files import (
    ML1M_GENRES,
    load_catalog,
    load_csv,
    load_jsonl,
    load_movielens,
)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _flags(on: set[str]) -> str:
    return "|".join("1" if g in on else "0" for g in ML100K_GENRES)


def _ml100k(folder: Path, *rows: str) -> Path:
    folder.mkdir(exist_ok=True)
    genres = "".join(f"{g}|{n}\n" for n, g in enumerate(ML100K_GENRES)) + "\n"
    (folder / "u.genre").write_text(genres, encoding="latin-1")
    (folder / "u.item").write_text("".join(r + "\n" for r in rows), encoding="latin-1")
    return folder


# ---- real data -----------------------------------------------------------------------------


@needs_data
def test_ml100k_real_file() -> None:
    items = load_movielens(DATA / "ml-100k")
    assert len(items) == 1682
    by_id = {i.id: i for i in items}
    assert set(by_id) == {str(n) for n in range(1, 1683)}
    toy = by_id["1"]
    assert toy.title == "Toy Story (1995)"
    assert toy.text == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert toy.metadata["title"] == "Toy Story"
    assert toy.metadata["year"] == 1995
    assert toy.metadata["genres"] == "Animation|Children's|Comedy"
    assert toy.metadata["genre_Animation"] is True
    assert toy.metadata["genre_Horror"] is False
    # latin-1 decoded right, not mojibake
    assert by_id["543"].title == "Misérables, Les (1995)"
    assert by_id["543"].metadata["title"] == "Misérables, Les"
    assert by_id["1633"].title == "Á köldum klaka (Cold Fever) (1994)"
    # every item has a flag for every genre, so {"genre_X": False} filters work
    for item in items:
        assert {k for k in item.metadata if k.startswith("genre_")} == {
            f"genre_{g}" for g in ML100K_GENRES
        }
    # the year comes from the last "(yyyy)", extra tags stay in the bare title
    assert by_id["1412"].metadata["year"] == 1995
    assert str(by_id["1412"].metadata["title"]).endswith("Great Giving (V)")
    # the one row without title year or release date has no year at all
    assert by_id["267"].title == "unknown" and "year" not in by_id["267"].metadata


@needs_data
def test_ml1m_real_file() -> None:
    items = load_movielens(DATA / "ml-1m")
    assert len(items) == 3883
    by_id = {i.id: i for i in items}
    assert by_id["1"].text == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert by_id["73"].title == "Misérables, Les (1995)"
    assert by_id["3952"].metadata["year"] == 2000
    assert len([k for k in by_id["2"].metadata if k.startswith("genre_")]) == len(ML1M_GENRES)
    assert by_id["2"].metadata["genre_Fantasy"] is True
    assert all(isinstance(i.metadata["year"], int) for i in items)


@needs_data
def test_load_catalog_dispatches_on_folder_and_item_file() -> None:
    assert len(load_catalog(DATA / "ml-1m")) == 3883
    assert len(load_catalog(DATA / "ml-100k" / "u.item")) == 1682


# ---- ML-100K / ML-1M format errors ----------------------------------------------------------


def test_ml100k_year_from_release_date_when_title_has_none(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path / "ml", f"7|Some Film|05-Mar-1997||http://x|{_flags({'Drama'})}")
    [item] = load_movielens(folder)
    assert item.metadata["year"] == 1997
    assert item.metadata["title"] == "Some Film"
    assert item.metadata["genre_Drama"] is True


def test_ml100k_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    folder = _ml100k(
        tmp_path / "ml",
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{_flags({'Comedy'})}",
        "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1",
    )
    with pytest.raises(DataFormatError) as e:
        load_movielens(folder)
    assert e.value.path == str(folder / "u.item") and e.value.line == 2
    assert "u.item:2:" in str(e.value) and "24" in str(e.value)


def test_ml100k_bad_genre_flag(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path / "ml", f"1|Toy Story (1995)|||x|{_flags(set())[:-1]}7")
    with pytest.raises(DataFormatError, match=r"u\.item:1: genre flags"):
        load_movielens(folder)


def test_ml100k_duplicate_id(tmp_path: Path) -> None:
    row = f"5|A (1990)|||x|{_flags(set())}"
    folder = _ml100k(tmp_path / "ml", row, f"6|B (1991)|||x|{_flags(set())}", row)
    with pytest.raises(DataFormatError, match=r"u\.item:3: duplicate id '5' \(first on line 1\)"):
        load_movielens(folder)


def test_ml100k_without_genre_file_is_a_config_error(tmp_path: Path) -> None:
    folder = _ml100k(tmp_path / "ml", f"1|A (1990)|||x|{_flags(set())}")
    (folder / "u.genre").unlink()
    with pytest.raises(ConfigError, match=r"u\.genre is missing"):
        load_movielens(folder)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("3::Heat (1995)", "expected 'id::title::genres'"),
        ("3::Heat (1995)::Action|Noir", "unknown genre"),
        ("x3::Heat (1995)::Action", "whole number"),
        ("3::::Action", "empty title"),
    ],
)
def test_ml1m_malformed_row(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "movies.dat"
    path.write_bytes(
        "1::Toy Story (1995)::Animation\n2::Café (1990)::Drama\n".encode("latin-1")
        + line.encode("latin-1")
        + b"\n"
    )
    with pytest.raises(DataFormatError, match=problem) as e:
        load_movielens(tmp_path)
    assert e.value.path == str(path) and e.value.line == 3


def test_ml1m_small_file_decodes_latin1(tmp_path: Path) -> None:
    (tmp_path / "movies.dat").write_bytes("2::Café (1990)::Drama|Romance\n".encode("latin-1"))
    [item] = load_movielens(tmp_path)
    assert item.title == "Café (1990)" and item.metadata["genres"] == "Drama|Romance"


def test_missing_or_unrecognised_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"expected u\.item .* or movies\.dat"):
        load_movielens(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "nope.jsonl")
    (tmp_path / "items.txt").write_text("x")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        load_catalog(tmp_path / "items.txt")


# ---- JSON Lines ------------------------------------------------------------------------------


def test_jsonl_fields_metadata_and_default_text(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    rows = [
        {"id": 10, "title": "Dune", "genres": ["Sci-Fi", "Drama"], "year": 1965, "kids": False},
        {"id": "b-2", "title": "Emma", "text": "A novel about matchmaking.", "rating": None},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    dune, emma = load_catalog(path)
    assert dune.id == "10"
    assert dune.metadata == {"genres": "Sci-Fi|Drama", "year": 1965, "kids": False}
    assert dune.text == "Dune. Genres: Sci-Fi, Drama. Year: 1965."
    assert emma.text == "A novel about matchmaking."
    assert emma.metadata == {}


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"id": 3, "title": "C"', "invalid JSON"),
        ('["id", "title"]', "expected a JSON object"),
        ('{"title": "C"}', "'id' must be"),
        ('{"id": true, "title": "C"}', "'id' must be"),
        ('{"id": 3}', "'title' must be"),
        ('{"id": 3, "title": ""}', "'title' must be"),
        ('{"id": 3, "title": "C", "text": 5}', "'text' must be a string"),
        ('{"id": 3, "title": "C", "cast": {"lead": "X"}}', "field 'cast'"),
        ('{"id": 1, "title": "again"}', r"duplicate id '1' \(first on line 1\)"),
    ],
)
def test_jsonl_malformed_line(tmp_path: Path, bad_line: str, problem: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1, "title": "A"}\n{"id": 2, "title": "B"}\n' + bad_line + "\n")
    with pytest.raises(DataFormatError, match=problem) as e:
        load_jsonl(path)
    assert e.value.path == str(path) and e.value.line == 3


def test_jsonl_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"id": 1, "title": "A"}\n{"id": 2, "title": "Caf\xe9"}\n')
    with pytest.raises(DataFormatError, match="not valid UTF-8") as e:
        load_jsonl(path)
    assert e.value.line == 2


def test_empty_jsonl_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="holds no items"):
        load_jsonl(path)


# ---- CSV -------------------------------------------------------------------------------------


def test_csv_types_cells_but_not_ids_or_titles(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "id,title,year,score,zip,new,note\n"
        '007,1984,1949,4.5,01234,true,"multi\nline"\n'
        "8,Emma,,3,2000,FALSE,\n",
        encoding="utf-8",
    )
    first, second = load_catalog(path)
    assert first.id == "007" and first.title == "1984"
    assert first.metadata == {
        "year": 1949, "score": 4.5, "zip": "01234", "new": True, "note": "multi\nline",
    }  # fmt: skip
    assert second.metadata == {"score": 3, "zip": 2000, "new": False}
    assert first.text.startswith("1984. Year: 1949. Score: 4.5.")


def test_csv_wrong_cell_count_names_the_physical_line(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('id,title,text\n1,A,"two\nlines"\n2,B\n')
    with pytest.raises(DataFormatError, match="expected 3 cells, got 2") as e:
        load_csv(path)
    assert e.value.line == 4


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("id,name\n1,A\n")
    with pytest.raises(DataFormatError, match=r"csv:1: header lacks column\(s\) \['title'\]"):
        load_csv(path)
    path.write_text("id,title,title\n1,A,B\n")
    with pytest.raises(DataFormatError, match="repeated"):
        load_csv(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match="empty file"):
        load_csv(path)


def test_csv_duplicate_id_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("id,title\n1,A\n2,B\n1,C\n")
    with pytest.raises(DataFormatError, match=r"items\.csv:4: duplicate id '1'"):
        load_csv(path)
    path.write_bytes(b"id,title\n1,A\n2,Caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"items\.csv:3: not valid UTF-8"):
        load_csv(path)


def test_a_csv_title_as_long_as_a_jsonl_one_loads(tmp_path: Path) -> None:
    # The csv module's default cell limit is 131,072 characters; JSONL has none.
    title = "T" * 200_000
    path = tmp_path / "long.csv"
    path.write_text(f"id,title\n1,{title}\n", encoding="utf-8")
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text(json.dumps({"id": "1", "title": title}) + "\n", encoding="utf-8")
    assert load_catalog(path)[0].title == load_catalog(jsonl)[0].title == title
    assert csv.field_size_limit() == 131_072  # the process-wide limit is put back
