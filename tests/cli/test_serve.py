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

    monkeypatch.setattr("explorer.app.server.serve", fake_serve)
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


def test_password_file_is_passed_and_silences_the_warning(
    tiny_store: Path,
    tmp_path: Path,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("s3cret\n")
    args = ["serve", str(tiny_store), "--address", "0.0.0.0", "--password-file", str(secret)]
    assert main([*args, "--num-procs", "2", "--no-show"]) == 0
    assert served[0]["basic_auth"] == "s3cret"
    assert served[0]["num_procs"] == 2
    assert served[0]["cookie_secret"]
    assert "warning" not in capsys.readouterr().err


def test_password_from_the_environment_or_the_command_line(
    tiny_store: Path,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPLORER_PASSWORD", "from-env")
    assert main(["serve", str(tiny_store), "--no-show"]) == 0
    assert served[-1]["basic_auth"] == "from-env"
    assert "warning" not in capsys.readouterr().err
    assert main(["serve", str(tiny_store), "--no-show", "--password", "on-the-line"]) == 0
    assert served[-1]["basic_auth"] == "on-the-line"
    assert "--password is visible to every local user" in capsys.readouterr().err


def test_basic_auth_file_is_checked_at_start(
    tiny_store: Path,
    tmp_path: Path,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"ana": "pw", ')
    assert main(["serve", str(tiny_store), "--basic-auth", str(users), "--no-show"]) == 2
    err = capsys.readouterr().err
    assert "is not valid JSON" in err
    assert err.count("\n") == 1
    assert served == []
    users.write_text('{"ana": "pw"}')
    assert main(["serve", str(tiny_store), "--basic-auth", str(users), "--no-show"]) == 0
    assert served[0]["basic_auth"] == {"ana": "pw"}


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
