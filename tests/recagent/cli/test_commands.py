"""The catalog and recommendation commands as a user meets them: exit codes, messages that
name the flag, output a catalog text cannot forge, and setup errors before any work.

Real parts: the CLI in-process (`main`) or as a process, a real embedded Chroma with a
small catalog ingested by the CLI, and a loopback fault server where an LLM server
misbehaves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from faultserver import Reply, fault_server

from recagent.cli.commands import one_line
from recagent.cli.main import main
from recagent.llm.backends.artifacts import ArtifactStore

FILMS = [
    {"id": "1", "title": "Alien (1979)", "text": "Sci-fi horror in space", "year": 1979},
    {"id": "2", "title": "Heat (1995)", "text": "Crime thriller, cops and robbers", "year": 1995},
    {"id": "3", "title": "Fargo (1996)", "text": "Crime comedy in the snow", "year": 1996},
    {"id": "4", "title": "Toy Story (1995)", "text": "Animated comedy about toys", "year": 1995},
    {"id": "5", "title": "Forged\n 1. Star Wars (1977)  [50]", "text": "A title with a newline",
     "year": 2000},
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, artifact_store: ArtifactStore) -> Path:
    home = tmp_path_factory.mktemp("cli-home")
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    catalog = home / "films.jsonl"
    catalog.write_text("".join(json.dumps(f) + "\n" for f in FILMS), encoding="utf-8")
    assert main(["ingest", "--file", str(catalog), "--home", str(home)]) == 0
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse refuses a flag value with exit 2
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_unusable_home_is_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "recommend", "--history", "1", "--home", "/proc/nope", "--no-llm")
    assert code == 2 and "home folder /proc/nope cannot be created" in err
    assert "Traceback" not in err


def test_a_history_covering_the_catalog_says_nothing_is_left(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = ",".join(f["id"] for f in FILMS)  # type: ignore[misc]
    code, out, _ = run(capsys, "recommend", "--history", every, "--home", str(home), "--no-llm",
                       "--candidates", "4", "--k", "3")
    assert code == 0 and "nothing left to recommend" in out
    code, out, _ = run(capsys, "recommend", "--history", every, "--home", str(home), "--no-llm",
                       "--candidates", "4", "--k", "3", "--json")
    assert code == 0 and json.loads(out)["status"] == "nothing_left"


@pytest.mark.parametrize(("argv", "message"), [
    (["--history", "1=0"], "--history: the rating of item 1 must be a number from 1 to 5"),
    (["--history", "1=nan"], "--history: the rating of item 1 must be a number from 1 to 5"),
    (["--history", "1,1"], "--history names item 1 more than once"),
    (["--history", "1", "--candidates", "0"], "argument --candidates: must be between 1 and 100"),
    (["--history", "1", "--k", "30"], "raise --candidates"),
    (["--history", "1", "--template", "nope"], "no prompt template 'nope'"),
    (["--history", "1", "--deadline", "0"], "argument --deadline: must be more than 0 seconds"),
])
def test_bad_input_names_the_flag(home: Path, capsys: pytest.CaptureFixture[str],
                                  argv: list[str], message: str) -> None:
    # --template is refused before the model would start (no model file is needed here).
    code, _, err = run(capsys, "recommend", *argv, "--home", str(home),
                       "--model", "/nowhere/model.gguf")
    assert code == 2 and message in err, err
    assert "validation error" not in err and "Traceback" not in err


def test_verbose_is_accepted_after_the_command(home: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recommend", "-v", "--history", "2", "--home", str(home),
                       "--no-llm", "--candidates", "3", "--k", "2")
    assert code == 0 and out


def test_each_command_lists_only_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ingest", "--help")
    assert code == 0 and "--movielens" in out
    assert not {"--model", "--llm-model", "--threads"} & set(out.split())
    _, out, _ = run(capsys, "serve-llm", "--help")
    assert "port on 127.0.0.1" in out
    _, out, _ = run(capsys, "models", "--help")
    assert "fetch" in out and "pinned PyPI" in out


def test_titles_print_on_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recommend", "--history", "1", "--home", str(home), "--no-llm",
                       "--candidates", "4", "--k", "4")
    assert code == 0
    items = [line for line in out.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    assert len(items) == 4  # the forged title adds no list line
    assert "Forged\\n 1. Star Wars" in out
    assert one_line("a\r\nb\tc\x1b") == "a\\r\\nb\\tc\\x1b"


def test_an_unknown_model_on_a_server_is_exit_2(home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with fault_server("404") as server:
        code, _, err = run(capsys, "recommend", "--history", "1", "--home", str(home),
                           "--llm-base-url", server.url, "--llm-model", "wrongname",
                           "--candidates", "4", "--k", "2", "--explain", "llm")
    assert code == 2 and "wrongname" in err and "Traceback" not in err


def test_chat_survives_a_body_that_is_not_json(home: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "talk.txt"
    script.write_text("I loved Heat\n", encoding="utf-8")
    with fault_server("not_json") as server:
        code, out, err = run(capsys, "chat", "--script", str(script), "--home", str(home),
                             "--llm-base-url", server.url, "--llm-model", "m", "--json",
                             "--candidates", "4", "--k", "2", "--deadline", "20",
                             "--method", "listwise")  # a ranker named: the LLM ranks
    assert code == 0 and "Traceback" not in err, err
    turn = json.loads(out.splitlines()[-1])
    assert turn["degraded"] and turn["items"]
    assert "2" not in {i["item_id"] for i in turn["items"]}  # Heat was named: never again


def test_python_m_recagent_cli_runs() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "recagent.cli", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "exit codes" in done.stdout


def test_chat_agent_plans_each_message_and_says_so(home: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "talk.txt"
    script.write_text("I loved Heat, something like it\n", encoding="utf-8")
    plan = {"steps": [{"tool": "find_titles", "args": {"titles": ["Heat"]}},
                      {"tool": "similar_to", "args": {}}, {"tool": "recommend", "args": {}}]}
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(plan)}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
    with fault_server(Reply(200, body)) as server:
        code, out, err = run(capsys, "chat", "--agent", "--script", str(script), "--home",
                             str(home), "--llm-base-url", server.url, "--llm-model", "m",
                             "--candidates", "4", "--k", "2", "--deadline", "20")
    assert code == 0 and "Traceback" not in err, err
    assert "plan: find_titles \u2192 similar_to \u2192 recommend (valid" in err
    assert "Heat (1995)" not in out.split("\n\n", 2)[-1]  # named: never in the list


def test_chat_agent_without_an_llm_is_exit_2(home: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "talk.txt"
    script.write_text("I loved Heat\n", encoding="utf-8")
    code, _, err = run(capsys, "chat", "--agent", "--no-llm", "--script", str(script),
                       "--home", str(home))
    assert code == 2 and "the agent plans each turn with an LLM" in err


@pytest.mark.parametrize("fault", ["hang", "500", "not_json", "no_choices"])
def test_a_failing_llm_server_is_a_degraded_answer_and_strict_exits_3(
        home: Path, capsys: pytest.CaptureFixture[str], fault: str) -> None:
    """Probe case 7: the wording call failed, yet the answer said "ok" and --strict exited
    0. Now the step and reason are in --json, and --strict exits 3, within the deadline."""
    with fault_server(fault, hold_s=10.0) as server:
        code, out, err = run(capsys, "recommend", "--history", "1", "--home", str(home),
                             "--llm-base-url", server.url, "--llm-model", "m", "--json",
                             "--strict", "--candidates", "4", "--k", "2", "--deadline", "1",
                             "--explain", "llm")
    assert code == 3, err
    got = json.loads(out)
    assert got["status"] == "degraded" and got["degraded"] is True
    assert [s.split(":")[0] for s in got["degraded_steps"]] == ["explain"]
    assert got["trace"]["degradations"][0]["code"] == got["degraded_steps"][0]
    assert len(got["items"]) == 2 and "warning: degraded answer: explain:" in err


def test_without_an_llm_no_item_is_labelled_llm(home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Probe case 11: with --no-llm every item said source "llm"."""
    code, out, _ = run(capsys, "recommend", "--history", "1", "--home", str(home), "--no-llm",
                       "--candidates", "4", "--k", "3", "--json")
    assert code == 0
    assert {i["source"] for i in json.loads(out)["items"]} == {"retrieval"}


@pytest.mark.parametrize(("history", "message"), [
    ("1=", "the rating of item 1 is empty"),
    ("1, 2=", "the rating of item 2 is empty"),
    ('["1", "1"]', "names item 1 more than once"),
    ('[{"item_id": "1", "rating": 9}]', "--history[0]: the rating of item 1 must be"),
    ('[true]', "--history[0] must be an item id"),
    ('["1",', "--history is not valid JSON"),
])
def test_history_entries_that_say_nothing_are_refused(
        home: Path, capsys: pytest.CaptureFixture[str], history: str, message: str) -> None:
    """Probe case 11: '--history 1=' was read as a like."""
    code, _, err = run(capsys, "recommend", "--history", history, "--home", str(home),
                       "--no-llm")
    assert code == 2 and message in err, err


def test_ids_with_commas_are_named_in_json(home: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Probe case 11: ids holding ',' or '=' could be ingested but not named."""
    catalog = tmp_path / "odd.jsonl"
    odd = [{"id": "a,b", "title": "Comma (2001)", "text": "Space opera"},
           {"id": "c=d", "title": "Equals (2002)", "text": "Space opera sequel"},
           {"id": "e", "title": "Plain (2003)", "text": "Space opera again"}]
    catalog.write_text("".join(json.dumps(f) + "\n" for f in odd), encoding="utf-8")
    odd_home = tmp_path / "home"
    odd_home.mkdir()
    (odd_home / "artifacts").symlink_to((home / "artifacts").resolve())
    assert main(["ingest", "--file", str(catalog), "--home", str(odd_home)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "recommend", "--history",
                         '["a,b", {"item_id": "c=d", "rating": 5}]', "--home", str(odd_home),
                         "--no-llm", "--candidates", "1", "--k", "1", "--json")
    assert code == 0, err
    assert [i["item_id"] for i in json.loads(out)["items"]] == ["e"]


def test_templates_explain_by_default_without_any_llm_call(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The 80% rule: no shipped model words well enough, so by default no wording call is
    made at all (the server here would fail every request)."""
    with fault_server("500") as server:
        code, out, _ = run(capsys, "recommend", "--history", "1", "--home", str(home),
                           "--llm-base-url", server.url, "--llm-model", "m", "--json",
                           "--strict", "--candidates", "4", "--k", "2")
        calls = server.count
    got = json.loads(out)
    assert code == 0 and got["status"] == "ok" and calls == 0
    assert {e["kind"] for e in got["trace"]["explanations"]} == {"template"}


def test_a_list_that_needs_no_llm_starts_none(home: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """With templates by default and no fit giving the LLM weight, `recommend` makes no LLM
    call, so it does not start the embedded model either (the same answer, in milliseconds
    after the catalog loads)."""
    code, out, err = run(capsys, "recommend", "--history", "1", "--home", str(home),
                         "--model", "smollm2-135m", "--candidates", "4", "--k", "2", "--json")
    assert code == 0 and "no LLM was started" in err, err
    got = json.loads(out)
    assert got["trace"]["model"] is None and got["trace"]["usage"]["completion_tokens"] == 0
