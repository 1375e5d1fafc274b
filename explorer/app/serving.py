"""What the app server adds to Panel's: a hardened login, and routes closed before login.

- Credentials are read and checked once, at start (``load_credentials``): a bad
  ``--basic-auth`` file is a one-line error, not an HTTP 500 at every login.
- Passwords are compared in constant time (``hmac.compare_digest``), and a failed login
  from an address makes that address's next attempt wait (``FAILED_LOGIN_DELAY`` seconds,
  without blocking the server), so guessing is slow.
- Panel's ``/components/<module>/...`` route imports any installed module named in the
  URL, before any login: the app needs none of it, so it is closed (404).
- Bokeh builds a session only for an authenticated request; an unauthenticated ``GET /``
  is redirected to the login page (tested in tests/cli/test_login.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from pathlib import Path
from typing import Any

import tornado.web
from panel.auth import BasicAuthProvider, BasicLoginHandler

from explorer.errors import InputError

FAILED_LOGIN_DELAY = 1.0  # seconds an address waits after a failed login
_sleep = asyncio.sleep  # (tests record the waits)
Credentials = dict[str, str] | str  # {user: password}, or one shared password


def load_credentials(basic_auth: str | Path) -> dict[str, str]:
    """Read and check a ``{"user": "password"}`` JSON file; InputError in one line if bad."""
    path = Path(basic_auth)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"--basic-auth {path}: no such file (a JSON file of user: password)"
        raise InputError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"--basic-auth {path} cannot be read ({type(exc).__name__})"
        raise InputError(msg) from exc
    except json.JSONDecodeError as exc:
        msg = (
            f"--basic-auth {path} is not valid JSON (line {exc.lineno}): write "
            '{"user": "password", ...}'
        )
        raise InputError(msg) from exc
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items())
    ):
        msg = (
            f"--basic-auth {path} must be a JSON object of non-empty user names and "
            'passwords, e.g. {"ana": "a long passphrase"}'
        )
        raise InputError(msg)
    return dict(data)


def check_password(credentials: Credentials, username: str, password: str) -> bool:
    """Whether ``username``/``password`` is valid, comparing in constant time."""
    given = password.encode("utf-8", "surrogatepass")
    if isinstance(credentials, str):
        return hmac.compare_digest(given, credentials.encode("utf-8", "surrogatepass"))
    ok = False
    for user, secret in credentials.items():  # every entry, so timing says nothing
        match_user = hmac.compare_digest(username.encode("utf-8", "surrogatepass"), user.encode())
        match_password = hmac.compare_digest(given, secret.encode("utf-8", "surrogatepass"))
        ok |= match_user & match_password
    return ok


class _Throttle:
    """Per client address: the earliest time of its next login attempt."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    def wait_for(self, address: str) -> float:
        return max(0.0, self._next.get(address, 0.0) - time.monotonic())

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._next[address] = max(now, self._next.get(address, 0.0)) + FAILED_LOGIN_DELAY
        if len(self._next) > 10_000:  # forget addresses whose wait is over
            self._next = {a: t for a, t in self._next.items() if t > now}


def _login_handler(credentials: Credentials, throttle: _Throttle) -> type[BasicLoginHandler]:
    class LoginHandler(BasicLoginHandler):  # type: ignore[misc]
        def _validate(self, username: str, password: str) -> bool:
            return check_password(credentials, username, password)

        async def post(self) -> None:
            address = str(self.request.remote_ip)
            await _sleep(throttle.wait_for(address))
            username = self.get_argument("username", "")
            password = self.get_argument("password", "")
            if not self._validate(username, password):
                throttle.failed(address)
            BasicLoginHandler.post(self)  # type: ignore[no-untyped-call]  # Panel's redirect

    return LoginHandler


class ExplorerAuthProvider(BasicAuthProvider):  # type: ignore[misc]
    """Panel's login page over our checked credentials (see the module docstring)."""

    def __init__(self, credentials: Credentials) -> None:
        # Set before Panel's __init__, which validates the provider (reads login_handler).
        self._handler = _login_handler(credentials, _Throttle())
        super().__init__()  # type: ignore[no-untyped-call]

    @property
    def login_handler(self) -> type[BasicLoginHandler]:
        """Our handler class, with Panel's login page and endpoint."""
        handler = self._handler
        handler._login_endpoint = self._login_endpoint
        handler._login_template = self._login_template
        return handler


class NotServed(tornado.web.RequestHandler):
    """404 for a route the app does not use."""

    def get(self, *_: str) -> None:
        raise tornado.web.HTTPError(404)


def server_options(basic_auth: Credentials | None, cookie_secret: str | None) -> dict[str, Any]:
    """Extra ``pn.serve`` options: closed routes, and our login when ``basic_auth`` is set.

    basic_auth : ``{user: password}`` (see ``load_credentials``), or one shared password.
    """
    options: dict[str, Any] = {"extra_patterns": [(r"/components/.*", NotServed)]}
    if basic_auth:
        options["auth_provider"] = ExplorerAuthProvider(basic_auth)
        options["cookie_secret"] = cookie_secret
    return options
