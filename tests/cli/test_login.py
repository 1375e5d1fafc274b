"""The app server before login: credentials checked at start, constant-time and throttled
logins, no session built and no module imported for an unauthenticated visitor."""

from __future__ import annotations

import http.client
import socket
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.app import serving
from explorer.app.server import serve
from explorer.app.serving import check_password, load_credentials
from explorer.app.shell import ExplorerApp
from explorer.errors import InputError

PASSWORD = "correct horse battery staple"


def test_credentials_are_checked_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "users.json"
    for text, expected in [
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"ana": ""}', "must be a JSON object"),
    ]:
        bad.write_text(text)
        with pytest.raises(InputError, match=expected):
            load_credentials(bad)
    bad.write_text('{"ana": "pw1", "bo": "pw2"}')
    assert load_credentials(bad) == {"ana": "pw1", "bo": "pw2"}


def test_check_password() -> None:
    users = {"ana": "pw1", "bo": "pw2"}
    assert check_password(users, "ana", "pw1")
    assert not check_password(users, "ana", "pw2")
    assert not check_password(users, "eve", "pw1")
    assert check_password("shared", "anyone", "shared")
    assert not check_password("shared", "anyone", "Shared")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def locked_server(tiny_store: Path) -> Iterator[tuple[int, list[ExplorerApp]]]:
    port, apps = _free_port(), []
    server = serve(
        tiny_store, port=port, show=False, threaded=True, on_app=apps.append,
        basic_auth=PASSWORD, cookie_secret="s" * 32,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield port, apps
    server.stop()


def _request(port: int, method: str, path: str, body: str = "", **headers: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    head = {"Content-Type": "application/x-www-form-urlencoded", **headers} if body else headers
    conn.request(method, path, body=body or None, headers=head)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_nothing_is_built_or_imported_before_login(
    locked_server: tuple[int, list[ExplorerApp]],
) -> None:
    port, apps = locked_server
    for _ in range(5):
        response = _request(port, "GET", "/")
        assert response.status == 302
        assert "login?next=" in response.getheader("Location")
    assert "tabnanny" not in sys.modules
    response = _request(port, "GET", "/components/tabnanny/check/__css__/x.css")
    assert response.status == 404
    assert "tabnanny" not in sys.modules  # Panel's route would have imported it
    time.sleep(0.5)
    assert apps == []


def test_failed_logins_wait_and_the_right_one_gets_in(
    locked_server: tuple[int, list[ExplorerApp]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = locked_server
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(serving, "_sleep", record)
    login = _request(port, "GET", "/login")
    xsrf = {"Cookie": login.getheader("Set-Cookie", "").split(";")[0]}
    for password in ["wrong", "also wrong", PASSWORD]:
        form = urllib.parse.urlencode({"username": "ana", "password": password})
        response = _request(port, "POST", "/login", form, **xsrf)
        assert response.status == 302
    assert waits[0] == 0.0
    assert waits[1] > 0.5 * serving.FAILED_LOGIN_DELAY  # after one failure
    assert waits[2] > waits[1]  # after two
    assert "error=" not in response.getheader("Location")
    assert "user=" in response.getheader("Set-Cookie", "")
