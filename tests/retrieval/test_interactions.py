"""The interaction store (retrieval/interactions.py) on real SQLite files, and
`recagent ingest` loading interactions end to end.

Real parts: SQLite in tmp_path, a second process killed with SIGKILL mid-write, the real
ML-100K ratings, and the CLI in-process (`main`) with the real embedder and Chroma."""

from __future__ import annotations

import itertools
import json
import select
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, REPO, needs_data

from recagent.cli.main import main
from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.wiring import Settings, open_interactions
from retrieval.interaction_files import read_interactions
from retrieval.interactions import InteractionRow, InteractionStore
from retrieval.types import IngestReport, Interaction

R = InteractionRow


@pytest.fixture
def db(tmp_path: Path) -> InteractionStore:
    return InteractionStore(tmp_path / "interactions.sqlite")


def report(added: int = 0, updated: int = 0, unchanged: int = 0) -> IngestReport:
    return IngestReport(added=added, updated=updated, unchanged=unchanged,
                        total=added + updated + unchanged)


def snapshot(store: InteractionStore, *collections: str) -> list[list[InteractionRow]]:
    return [store.interactions(c) for c in collections]


LOG = [R("1", "a", 5.0, None, 30), R("1", "b", 2.0, None, 10), R("2", "a", None, True, 20),
       R("10", "c", None, None, None), R("2", "b", 3.0, None, 20)]


# ---- rows ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"user": ""}, {"item": ""}, {"user": 1}, {"rating": -1.0}, {"rating": float("nan")},
    {"rating": float("inf")}, {"rating": True}, {"liked": 1}, {"ts": 1.5}, {"ts": True},
    {"ts": 2**63}, {"ts": -(2**63)},
])
def test_a_row_is_checked_when_made(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        R(**{"user": "u", "item": "i", **bad})  # type: ignore[arg-type]


def test_positive_is_defined_once(db: InteractionStore) -> None:
    # The SQL of pairs(positive_only=True) agrees with Interaction.polarity on every case.
    grid = [R("u", f"i{n}", rating, liked, n) for n, (rating, liked) in enumerate(
        itertools.product([None, 0.0, 1.0, 2.0, 3.0, 3.99, 4.0, 4.5, 5.0, 7.0],
                          [None, True, False]))]
    db.ingest("grid", grid)
    expected = [("u", r.item) for r in grid
                if Interaction(item_id=r.item, rating=r.rating, liked=r.liked).polarity > 0]
    assert db.pairs("grid", positive_only=True) == expected
    assert [r.positive for r in grid] == [("u", r.item) in expected for r in grid]
    assert db.pairs("grid") == [("u", r.item) for r in grid]


# ---- ingesting -------------------------------------------------------------------------------


def test_ingest_then_read_in_time_order(db: InteractionStore) -> None:
    assert db.ingest("films", LOG) == report(added=5)
    # time order: rows without a time first, equal times in the order they arrived
    assert db.interactions("films") == [LOG[3], LOG[1], LOG[2], LOG[4], LOG[0]]
    assert db.count("films") == 5 and db.users("films") == ["1", "2", "10"]
    assert db.by_user("films") == {"1": [LOG[1], LOG[0]], "2": [LOG[2], LOG[4]],
                                   "10": [LOG[3]]}
    assert db.pairs("films", positive_only=True) == [("10", "c"), ("2", "a"), ("1", "a")]
    history = db.history("films", "1")
    assert [(i.item_id, i.rating) for i in history.chronological()] == [("b", 2.0), ("a", 5.0)]
    with pytest.raises(ConfigError, match="no interactions"):
        db.history("films", "nobody")


def test_collections_do_not_mix(db: InteractionStore) -> None:
    db.ingest("films", LOG)
    assert db.ingest("books", LOG[:2]) == report(added=2)
    assert db.count("films") == 5 and db.count("books") == 2 and db.count("none") == 0
    assert db.interactions("none") == [] and db.users("none") == []


def test_reingesting_changes_nothing(tmp_path: Path) -> None:
    first = InteractionStore(tmp_path / "i.sqlite")
    first.ingest("films", LOG)
    before = snapshot(first, "films")
    again = InteractionStore(tmp_path / "i.sqlite")  # another opening of the same file
    assert again.ingest("films", iter(LOG)) == report(unchanged=5)
    assert snapshot(again, "films") == before


def test_ingest_is_incremental(db: InteractionStore) -> None:
    db.ingest("films", LOG)
    changed = [R("1", "a", 4.0, None, 30),       # a new rating: updated
               R("1", "a", 1.0, None, 99),       # the same item later: a new row
               R("2", "a", None, False, 20),     # liked → disliked: updated
               R("10", "c", 2.0, None, None),    # the untimed row: its key has no time
               R("3", "d", 5.0, None, 1),        # a new user
               LOG[1]]                           # as before: unchanged
    assert db.ingest("films", changed) == report(added=2, updated=3, unchanged=1)
    rows = db.interactions("films")
    assert len(rows) == 7  # nothing is deleted: rows absent from the input are kept
    assert R("2", "b", 3.0, None, 20) in rows and R("10", "c", 2.0, None, None) in rows
    assert [r.rating for r in db.by_user("films")["1"]] == [2.0, 4.0, 1.0]
    assert [i.rating for i in db.history("films", "1").interactions] == [2.0, 1.0]  # latest
    assert db.ingest("films", changed) == report(unchanged=6)


def test_a_key_given_twice_counts_once_and_the_last_wins(db: InteractionStore) -> None:
    twice = [R("1", "a", 3.0, None, 5), R("1", "b", 1.0, None, 6), R("1", "a", 5.0, None, 5)]
    assert db.ingest("films", twice) == report(added=2)
    assert db.interactions("films") == [R("1", "a", 5.0, None, 5), R("1", "b", 1.0, None, 6)]
    assert db.ingest("films", twice) == report(unchanged=2)


def test_not_a_row_is_refused(db: InteractionStore) -> None:
    with pytest.raises(ConfigError, match="row 2 of the input is not an InteractionRow"):
        db.ingest("films", [LOG[0], ("1", "a")])  # type: ignore[list-item]
    assert db.count("films") == 0


# ---- never half-written ----------------------------------------------------------------------


def rows_then(failure: BaseException, n: int = 250) -> Iterator[InteractionRow]:
    for k in range(n):
        yield R(f"u{k}", "new", 4.0, None, k)
    raise failure


@pytest.mark.parametrize("failure", [ValueError("a bad row"),
                                     KeyboardInterrupt()])
def test_a_failing_input_leaves_the_store_as_it_was(db: InteractionStore,
                                                    failure: BaseException) -> None:
    db.ingest("films", LOG)
    before = snapshot(db, "films")
    with pytest.raises(type(failure)):
        db.ingest("films", itertools.chain([R("1", "a", 1.0, None, 30)], rows_then(failure)),
                  batch_size=100)
    assert snapshot(db, "films") == before
    assert db.ingest("films", LOG) == report(unchanged=5)  # and the store still works


def test_a_failure_midway_through_writing_rolls_back(db: InteractionStore) -> None:
    db.ingest("films", LOG)
    before = snapshot(db, "films")
    seen: list[int] = []

    def stop(written: int, total: int) -> None:
        seen.append(written)
        if len(seen) == 2:
            raise KeyboardInterrupt

    many = [R(f"u{k}", "x", 3.0, None, k) for k in range(500)] + [R("1", "a", 1.0, None, 30)]
    with pytest.raises(KeyboardInterrupt):
        db.ingest("films", many, batch_size=100, progress=stop)
    assert seen == [100, 200]  # two batches were written to the table, then undone
    assert snapshot(db, "films") == before


KILLED_WRITER = """
import sys, time
from retrieval.interactions import InteractionRow, InteractionStore

def pause(written, total):
    print("writing", written, total, flush=True)
    time.sleep(600)  # killed here, holding the write transaction

rows = (InteractionRow(f"k{n}", f"i{n % 97}", 4.0, None, n) for n in range(60_000))
InteractionStore(sys.argv[1]).ingest("films", rows, batch_size=20_000, progress=pause)
print("not killed", flush=True)
"""


def test_a_writer_killed_midway_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "interactions.sqlite"
    db = InteractionStore(path)
    db.ingest("films", LOG)
    before = snapshot(db, "films")
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready, "the writer did not start writing"
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["writing", "20000", "60000"]
        # while it writes: readers see the last committed state, a second writer waits
        # (here at most 0.2 s) and then fails with a message, not a traceback
        assert snapshot(db, "films") == before
        with pytest.raises(ConfigError, match="stayed busy"):
            InteractionStore(path, busy_timeout_s=0.2).ingest("films", LOG)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert snapshot(db, "films") == before and db.count("films") == 5
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.ingest("films", [*LOG[:1], R("9", "z", 5.0, None, 1)]) == \
           report(added=1, unchanged=1)


def test_unusable_files_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database, " * 512)
    with pytest.raises(ConfigError, match=r"junk\.sqlite"):
        InteractionStore(junk)
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as made:
        made.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="newer recagent"):
        InteractionStore(newer)


# ---- real data -------------------------------------------------------------------------------


@needs_data
def test_ml100k_ratings_round_trip(db: InteractionStore) -> None:
    rows = read_interactions(DATA / "ml-100k" / "u.data")
    assert db.ingest("ml-100k", rows) == report(added=100_000)
    assert db.ingest("ml-100k", rows) == report(unchanged=100_000)
    assert db.count("ml-100k") == 100_000 and len(db.users("ml-100k")) == 943
    assert len(db.pairs("ml-100k", positive_only=True)) == 34174 + 21201  # ratings 4 and 5
    stored = db.interactions("ml-100k")
    assert sorted(stored, key=lambda r: (r.user, r.item)) == \
           sorted(rows, key=lambda r: (r.user, r.item))
    assert [r.ts or 0 for r in stored] == sorted(r.ts or 0 for r in rows)


# ---- the CLI -----------------------------------------------------------------------------------

FILMS = [
    {"id": "1", "title": "Alien (1979)", "text": "Sci-fi horror in space"},
    {"id": "2", "title": "Heat (1995)", "text": "Crime thriller, cops and robbers"},
    {"id": "3", "title": "Fargo (1996)", "text": "Crime comedy in the snow"},
    {"id": "tt4", "title": "Toy Story (1995)", "text": "Animated comedy about toys"},
]


@pytest.fixture
def home(tmp_path: Path, artifact_store: ArtifactStore) -> Path:
    """A home whose model files are the test cache's (no copy, nothing fetched)."""
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_loads_interactions_with_and_into_a_catalog(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = home / "films.jsonl"
    catalog.write_text("".join(json.dumps(f) + "\n" for f in FILMS), encoding="utf-8")
    log = home / "log.csv"
    log.write_text("user,item,rating,timestamp\nann,1,5,10\nann,02,2,20\nbob,tt4,4,15\n")
    code, out, err = run(capsys, "ingest", "--file", str(catalog), "--interactions", str(log),
                         "--home", str(home), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["total"] == 4 and done["added"] == 4  # the catalog's report, as before
    assert done["interactions"] | {"database": "-"} == {
        "added": 3, "updated": 0, "unchanged": 0, "total": 3, "file": str(log), "stored": 3,
        "users": 2, "database": "-"}
    settings = Settings(home=home)
    assert open_interactions(settings).pairs("catalog", positive_only=True) == [
        ("ann", "1"), ("bob", "tt4")]

    # --interactions alone: into the existing catalog, incrementally
    more = home / "more.jsonl"
    more.write_text('{"user": "bob", "item": "3", "liked": true}\n'
                    '{"user": "ann", "item": 2, "rating": 3, "timestamp": 20}\n')
    code, out, err = run(capsys, "ingest", "--interactions", str(more), "--home", str(home))
    assert code == 0, err
    assert "2 interactions — 1 added, 1 updated, 0 unchanged" in out
    assert "now holds 4 interactions of 2 users" in out
    code, out, _ = run(capsys, "ingest", "--interactions", str(more), "--home", str(home))
    assert code == 0 and "0 added, 0 updated, 2 unchanged" in out

    # an item the catalog does not hold: refused, naming file, line and id; nothing written
    bad = home / "bad.csv"
    bad.write_text("user,item,rating\ncid,1,5\ncid,99,4\n")
    code, _, err = run(capsys, "ingest", "--interactions", str(bad), "--home", str(home))
    assert code == 2 and f"{bad}:3: item '99' is not in the catalog" in err
    assert "Traceback" not in err
    assert open_interactions(settings).count("catalog") == 4


def test_cli_refusals(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ingest", "--home", str(home))
    assert code == 2 and "--interactions FILE" in err
    log = home / "log.csv"
    log.write_text("user,item\nann,1\n")
    code, _, err = run(capsys, "ingest", "--interactions", str(log), "--home", str(home),
                       "--collection", "empty-one")
    assert code == 2 and "collection 'empty-one' is empty" in err
    code, _, err = run(capsys, "ingest", "--interactions", str(home / "nowhere.csv"),
                       "--home", str(home))
    assert code == 2 and "nowhere.csv does not exist" in err


def test_cli_movielens_folder_brings_its_ratings(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = home / "ml-tiny"
    folder.mkdir()
    genres = ["unknown", "Action", "Comedy"]
    (folder / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(genres)))
    (folder / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|0|0|1\n"
                                   "2|GoldenEye (1995)|01-Jan-1995||url|0|1|0\n",
                                   encoding="latin-1")
    (folder / "u.data").write_text("7\t1\t5\t100\n7\t2\t3\t200\n8\t2\t4\t150\n")
    code, out, err = run(capsys, "ingest", "--movielens", str(folder), "--home", str(home),
                         "--collection", "ml-tiny", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["total"] == 2 and done["interactions"]["added"] == 3
    # an explicit --interactions file replaces the folder's own ratings
    other = home / "other.dat"
    other.write_text("9::1::4::300\n")
    code, out, err = run(capsys, "ingest", "--movielens", str(folder), "--interactions",
                         str(other), "--home", str(home), "--collection", "ml-tiny")
    assert code == 0, err
    assert "2 items — 0 added, 0 updated, 2 unchanged" in out
    assert "1 interactions — 1 added" in out and "now holds 4 interactions of 3 users" in out
