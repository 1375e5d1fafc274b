"""The one numba ``njit`` wrapper every kernel of the project uses.

It lives outside ``explorer.compute`` and ``explorer.render`` so that both sides share it
while neither imports the other (the import contracts in pyproject.toml).

Policy: ``cache=True`` so the compiled code survives between processes (numba costs
seconds per kernel to compile), ``nogil=True`` so kernels can run beside other threads,
and no ``fastmath``: results must be reproducible and NaN-safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numba

prange = numba.prange


def njit(*args: Any, **kwargs: Any) -> Any:
    """``numba.njit`` with the project's defaults (``cache=True``, ``nogil=True``).

    Use bare (``@njit``) or with options (``@njit(parallel=True)``).
    """
    options: dict[str, Any] = {"cache": True, "nogil": True, **kwargs}
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return numba.njit(**options)(args[0])  # noqa: TID251 - this is the wrapper
    return functools.partial(_jit_with, options)


def _jit_with(options: dict[str, Any], func: Callable[..., Any]) -> Any:
    return numba.njit(**options)(func)  # noqa: TID251 - this is the wrapper
