"""One definition of error, computed once by the errors stage."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from explorer.errors import InputError
from explorer.pipeline.core_stages import core_stages
from explorer.store.format import error_values


def _ctx(points: pd.DataFrame, **roles: str) -> SimpleNamespace:
    return SimpleNamespace(dataset=SimpleNamespace(points=points), roles=roles)


def _errors(ctx: SimpleNamespace) -> Any:
    stage = next(s for s in core_stages() if s.name == "errors")
    assert stage.enabled(ctx)  # type: ignore[arg-type]
    return stage.run(ctx)  # type: ignore[arg-type]


def test_label_and_prediction_give_wrong_right_unknown() -> None:
    points = pd.DataFrame({"y": ["a", "b", None, "c"], "p": ["a", "c", "a", None]})
    result = _errors(_ctx(points, label="y", prediction="p"))
    assert result.arrays["error"].tolist() == [0, 1, -1, -1]
    assert result.arrays["error"].dtype == np.int8
    assert "loss" not in result.arrays
    assert result.summary["n_unknown"] == 2
    assert result.summary["error_rate"] == 0.5  # unknowns are left out of rates
    values = error_values(result.arrays["error"], None)
    np.testing.assert_array_equal(values, [0.0, 1.0, np.nan, np.nan])


def test_loss_is_honoured() -> None:
    points = pd.DataFrame({"loss": [0.0, 2.5, None, 0.25]})
    result = _errors(_ctx(points, loss="loss"))
    assert result.arrays["error"].tolist() == [0, 1, -1, 1]
    np.testing.assert_array_equal(result.arrays["loss"], np.float32([0.0, 2.5, np.nan, 0.25]))
    values = error_values(result.arrays["error"], result.arrays["loss"])
    assert np.nanmean(values) == pytest.approx(2.75 / 3)
    with pytest.raises(InputError, match="must be finite and >= 0"):
        _errors(_ctx(pd.DataFrame({"loss": [0.1, -1.0]}), loss="loss"))
