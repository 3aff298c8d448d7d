"""Where the service may bind, and the `serve` command's refusals (before any work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.cli.main import main
from recagent.errors import ConfigError
from recagent.serve.runner import check_bind, is_loopback


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True),
                                            ("::1", True), ("127.0.0.7", True),
                                            ("0.0.0.0", False), ("::", False),
                                            ("192.0.2.4", False), ("example.org", False)])
def test_only_loopback_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_an_api_key() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "key")
    with pytest.raises(ConfigError, match="API key"):
        check_bind("0.0.0.0", None)


def test_serve_refuses_a_public_address_without_a_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECAGENT_API_KEY", raising=False)
    code = main(["serve", "--home", str(tmp_path), "--host", "0.0.0.0", "--no-llm"])
    assert code == 2
    assert "API key" in capsys.readouterr().err
    assert not (tmp_path / "service.sqlite").exists()
