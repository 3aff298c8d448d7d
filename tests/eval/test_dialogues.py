"""The dialogue format: errors name file and line; targets and mentions resolve to items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.dialogues import TitleIndex, load_turns
from recagent.errors import ConfigError, DataFormatError
from recagent.types import Item

ITEMS = [Item(id="1", title="Heat (1995)", text=""), Item(id="2", title="Alien (1979)", text=""),
         Item(id="3", title="Aliens (1986)", text=""),
         Item(id="4", title="American Pie (1999)", text="")]
GOOD = {"dialog_id": "d1", "turn_id": 1, "context": ["I loved Heat (1995)"],
        "rec": ["Alien (1979)", "3"], "entity": ["Heat (1995)"]}


def _write(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def test_a_good_file(tmp_path: Path) -> None:
    index = TitleIndex(ITEMS)
    (turn,) = load_turns(_write(tmp_path / "t.jsonl", GOOD), index)
    assert turn.targets == ("2", "3") and turn.key == "d1_1"
    assert index.mentions(turn) == ["1"]
    assert turn.seeker_messages == ["I loved Heat (1995)"]


@pytest.mark.parametrize(("bad", "problem"), [
    ("{oops", "invalid JSON"),
    ("[1]", "expected a JSON object"),
    ({**GOOD, "turn_id": "one"}, "'turn_id' must be an integer"),
    ({**GOOD, "dialog_id": ""}, "'dialog_id' must be"),
    ({**GOOD, "context": "hi"}, "'context' must be a list of strings"),
    ({**GOOD, "context": []}, "'context' is empty"),
    ({**GOOD, "rec": []}, "'rec' is empty"),
    ({**GOOD, "rec": ["Heat"]}, "'rec' names 'Heat', which is neither"),
    ({**GOOD, "entity": [3]}, "'entity' must be a list of strings"),
    (GOOD, "turn d1_1 repeats line 1"),
])
def test_a_bad_line_names_file_and_line(tmp_path: Path, bad: object, problem: str) -> None:
    path = _write(tmp_path / "t.jsonl", GOOD, "", bad)
    with pytest.raises(DataFormatError, match=problem) as e:
        load_turns(path, TitleIndex(ITEMS))
    assert e.value.path == str(path) and e.value.line == 3


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_turns(tmp_path / "none.jsonl", TitleIndex(ITEMS))
    with pytest.raises(ConfigError, match="holds no dialogue turns"):
        load_turns(_write(tmp_path / "e.jsonl", ""), TitleIndex(ITEMS))


def test_mentions_exact_in_text_then_entities_fuzzy_with_a_year_only() -> None:
    index = TitleIndex(ITEMS)
    assert index.in_text("Have you seen Aliens (1986)? or Alien (1979)") == ["3", "2"]
    assert index.entity("American Pie") == "4"           # exact without the year
    assert index.entity("Americn Pie (1999)") == "4"     # a typo, with a year: fuzzy
    assert index.entity("Eve") is None                   # a bare word never becomes a movie
