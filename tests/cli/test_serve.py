"""``explorer serve`` and ``explorer demo`` options (the server itself is stubbed out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from explorer.cli import main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the app server by a recorder of its arguments."""
    calls: list[dict[str, Any]] = []

    def fake_serve(store: Path, **kwargs: Any) -> None:
        calls.append({"store": Path(store), **kwargs})

    monkeypatch.setattr("explorer.app.shell.serve", fake_serve)
    return calls


def test_serve_binds_locally_by_default(
    tiny_store: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tiny_store), "--no-show"]) == 0
    (call,) = served
    assert call["address"] == "127.0.0.1"
    assert call["port"] == 5006
    assert call["show"] is False
    assert call["basic_auth"] is None
    out, err = capsys.readouterr()
    assert "http://localhost:5006/" in out
    assert "warning" not in err


def test_open_address_without_auth_warns(
    tiny_store: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["serve", str(tiny_store), "--address", "0.0.0.0", "--port", "8080", "--no-show"]
    assert main([*args, "--allow-websocket-origin", "team.example:8080"]) == 0
    assert served[0]["websocket_origin"] == ["team.example:8080"]
    assert "without --basic-auth or --password" in capsys.readouterr().err


def test_password_is_passed_and_silences_the_warning(
    tiny_store: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["serve", str(tiny_store), "--address", "0.0.0.0", "--password", "s3cret"]
    assert main([*args, "--num-procs", "2", "--no-show"]) == 0
    assert served[0]["basic_auth"] == "s3cret"
    assert served[0]["num_procs"] == 2
    assert served[0]["cookie_secret"]
    assert "warning" not in capsys.readouterr().err


def test_bad_options_are_one_line_errors(
    tiny_store: Path,
    tmp_path: Path,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "users.json"
    assert main(["serve", str(tiny_store), "--basic-auth", str(missing)]) == 2
    assert main(["serve", str(tmp_path / "nope.store")]) == 2
    assert main(["serve", str(tiny_store), "--num-procs", "0"]) == 2
    err = capsys.readouterr().err
    assert "users.json: no such file" in err
    assert "not a projection store" in err
    assert "--num-procs 0" in err
    assert "Traceback" not in err
    assert served == []


def test_demo_serves_an_existing_store(tiny_store: Path, served: list[dict[str, Any]]) -> None:
    assert main(["demo", "--store", str(tiny_store), "--no-show", "--port", "5999"]) == 0
    assert served[0]["store"] == tiny_store
    assert served[0]["port"] == 5999
