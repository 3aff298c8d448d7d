"""The one interaction-file parser (retrieval/interaction_files.py): the real MovieLens
ratings, small CSV and JSON Lines logs, and broken rows named by file and line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import DATA, needs_data

from eval.datasets import load_ml100k
from recagent.errors import ConfigError, DataFormatError
from retrieval.catalog_files import load_movielens
from retrieval.interaction_files import (
    ratings_file,
    read_csv,
    read_interactions,
    read_jsonl,
    read_separated,
)
from retrieval.interactions import InteractionRow

ML1M_PARTIAL = DATA / "ml-1m-partial" / "ratings_users_1-2999.dat"

# ---- real data -----------------------------------------------------------------------------


@needs_data
def test_ml100k_ratings_are_read_whole_and_checked_against_the_catalog() -> None:
    catalog = {i.id for i in load_movielens(DATA / "ml-100k")}
    rows = read_interactions(DATA / "ml-100k" / "u.data", known=catalog)
    assert len(rows) == 100_000
    assert len({r.user for r in rows}) == 943 and len({r.item for r in rows}) == 1682
    assert Counter(r.rating for r in rows) == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174,
                                               5.0: 21201}
    stamps = [r.ts for r in rows if r.ts is not None]
    assert len(stamps) == 100_000 and (min(stamps), max(stamps)) == (874724710, 893286638)
    assert all(r.liked is None for r in rows)
    assert rows[0] == InteractionRow("196", "242", 3.0, None, 881250949)  # line 1 of u.data


@needs_data
def test_eval_reads_through_the_same_parser() -> None:
    # eval/datasets.py has no reader of its own: its ratings are these rows, in file order.
    rows = list(read_separated(DATA / "ml-100k" / "u.data", "\t"))
    ratings = load_ml100k(DATA / "ml-100k").ratings
    assert [(r.user, r.item, r.rating, r.ts) for r in ratings] == \
           [(r.user, r.item, r.rating, r.ts) for r in rows]


@needs_data
def test_ml1m_partial_ratings_name_only_movies_of_movies_dat() -> None:
    if not ML1M_PARTIAL.is_file():
        pytest.skip(f"{ML1M_PARTIAL} not present")
    catalog = {i.id for i in load_movielens(DATA / "ml-1m")}
    rows = read_interactions(ML1M_PARTIAL, known=catalog)
    assert len(rows) == 487_650
    assert len({r.user for r in rows}) == 2999 and len({r.item for r in rows}) == 3615
    assert sum(r.user == "1" for r in rows) == 53


def test_a_movielens_folder_names_its_ratings_file(tmp_path: Path) -> None:
    assert ratings_file(tmp_path) is None
    (tmp_path / "ratings.dat").write_text("1::2::3::4\n")
    assert ratings_file(tmp_path) == tmp_path / "ratings.dat"
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    assert ratings_file(tmp_path) == tmp_path / "u.data"


# ---- small files ---------------------------------------------------------------------------


def test_separated_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t007\t5\t100\n\n2\t8\t\t50\r\n", encoding="latin-1")
    (tmp_path / "ratings_users_1-2.dat").write_text("1::7::4::10\n")
    (tmp_path / "u1.base").write_text("3\t7\t2\t1\n")
    assert read_interactions(tmp_path / "u.data") == [
        InteractionRow("1", "7", 5.0, None, 100),  # numeric ids are written as numbers
        InteractionRow("2", "8", None, None, 50),  # an empty rating: a bare interaction
    ]
    assert read_interactions(tmp_path / "ratings_users_1-2.dat") == [
        InteractionRow("1", "7", 4.0, None, 10)]
    assert read_interactions(tmp_path / "u1.base") == [InteractionRow("3", "7", 2.0, None, 1)]


def test_csv_with_optional_columns(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("\ufeffuser, item ,liked,rating,note\n"
                   "a,7,true,,x\n"
                   "\n"
                   "a,008,0,2.5,\n"
                   "b,tt1,,,\n"
                   ",,,,\n", encoding="utf-8")
    rows = read_interactions(log, known={"7", "8", "tt1"})
    assert rows == [InteractionRow("a", "7", None, True, None),
                    InteractionRow("a", "8", 2.5, False, None),
                    InteractionRow("b", "tt1", None, None, None)]


def test_jsonl_with_optional_keys(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    records = [{"user": 1, "item": "007", "rating": 5, "timestamp": 3},
               {"user": "u", "item": 8, "liked": False, "timestamp": "4", "extra": [1]},
               {"user": "u", "item": "x", "rating": None, "liked": None}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n", encoding="utf-8")
    # "007" is an id of this catalog as written: it is kept, not read as a number
    rows = read_interactions(log, known={"007", "8", "x"})
    assert rows == [InteractionRow("1", "007", 5.0, None, 3),
                    InteractionRow("u", "8", None, False, 4),
                    InteractionRow("u", "x", None, None, None)]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("u.data", "1\t7\t5\t9\n1\t7\t5\n", r"u\.data:2: expected 4 fields, got 3"),
    ("u.data", "1\t99\t5\t9\n", r"u\.data:1: item '99' is not in the catalog"),
    ("u.data", "\n1\t7\tfive\t9\n", r"u\.data:2: rating 'five' is not a number"),
    ("u.data", "1\t7\t5\tlate\n", r"u\.data:1: timestamp 'late' is not a whole number"),
    ("u.data", "1\t7\t5\t\n", r"u\.data:1: no timestamp"),
    ("u.data", " \t7\t5\t9\n", r"u\.data:1: empty user or item id"),
    ("u.data", "1\t7\t-1\t9\n", r"u\.data:1: rating must be a finite number >= 0"),
    ("ratings.dat", "1::7::5::9\n1::7::nan::9\n", r"ratings\.dat:2: rating must be a finite"),
    ("log.csv", "user,rating\n1,5\n", r"log\.csv:1: header lacks column\(s\) \['item'\]"),
    ("log.csv", "user,item,user\n1,7,1\n", r"log\.csv:1: repeated column names"),
    ("log.csv", "user,item,liked\n1,7,true\n1,7,maybe\n", r"log\.csv:3: liked must be true"),
    ("log.csv", "user,item\n1,7\n1,7,5\n", r"log\.csv:3: expected 2 cells, got 3"),
    ("log.csv", "user,item,rating\n1,7,5\n2,\"x\n\",1\n", r"log\.csv:4: item 'x' is not in"),
    ("log.csv", "", r"log\.csv:1: empty file"),
    ("log.jsonl", '{"user": 1, "item": 7}\n{"user": 1,\n', r"log\.jsonl:2: invalid JSON"),
    ("log.jsonl", "[1, 7]\n", r"log\.jsonl:1: expected a JSON object"),
    ("log.jsonl", '{"user": true, "item": 7}\n', r"log\.jsonl:1: 'user' must be a non-empty"),
    ("log.jsonl", '{"user": 1, "item": 7, "liked": "yes"}\n', r"log\.jsonl:1: 'liked' must be"),
    ("log.jsonl", '{"user": 1, "item": 7, "rating": "5"}\n', r"log\.jsonl:1: 'rating' must be"),
    ("log.jsonl", '{"user": 1, "item": 7, "timestamp": 1.5}\n', r"log\.jsonl:1: 'timestamp'"),
    ("log.jsonl", '{"user": 1, "item": 70}\n', r"log\.jsonl:1: item '70' is not in the catalog"),
    # probe case 11: a 5,000-digit id was a ValueError traceback; a NUL byte was accepted
    ("log.csv", "user,item\n1,7\n1," + "9" * 5000 + "\n", r"log\.csv:3: item '9999"),
    ("log.csv", "user,item\nu\x00x,7\n", r"log\.csv:2: the user id 'u\\x00x' holds a control"),
    ("log.jsonl", '{"user": "a\\u0000", "item": 7}\n', r"log\.jsonl:1: the user id"),
])
def test_bad_rows_name_the_file_and_line(tmp_path: Path, name: str, text: str,
                                         message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        read_interactions(path, known={"7"})


def test_a_timestamp_can_be_required(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n1,7,5\n1,8,\n")
    assert len(list(read_csv(log))) == 2
    with pytest.raises(DataFormatError, match=r"log\.csv:3: no timestamp"):
        list(read_csv(log, require_ts=True))
    log.write_text("user,item\n1,7\n")
    with pytest.raises(DataFormatError, match=r"header lacks column\(s\) \['timestamp'\]"):
        list(read_csv(log, require_ts=True))
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text('{"user": 1, "item": 7}\n')
    with pytest.raises(DataFormatError, match=r"log\.jsonl:1: no timestamp"):
        list(read_jsonl(jsonl, require_ts=True))


def test_unknown_formats_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_interactions(tmp_path / "nowhere.csv")
    (tmp_path / "log.txt").write_text("1,7\n")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_interactions(tmp_path / "log.txt")
