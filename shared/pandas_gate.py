"""pandas, loaded only where a process needs it.

pandas and its extensions hold about 30 MB of a process (measured at the scoring process's floor). The stream's alert path works on numpy
and Arrow alone, yet pyarrow imports pandas the first time it converts anything (its C++ layer
looks up pandas' null values; its Python layer asks whether an input is a pandas object). So the
scoring process closes a gate at startup (:func:`keep_pandas_out`): from then on an import of
pandas fails, which pyarrow takes as "pandas is not installed" — its C++ layer asks again at its
next conversion, for the price of a failed lookup (microseconds).

Code that needs pandas gets it from :func:`load_pandas`, which opens the gate for good, imports
pandas and tells pyarrow and clickhouse-connect (which remember an absent pandas) that it is
there. In a process that never closed the gate (the batch commands, the tests), ``load_pandas``
is a plain import.
"""

from __future__ import annotations

import importlib.abc
import sys
from types import ModuleType


class _PandasGate(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path`` while closed: refuses pandas, leaves every other import alone."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(
                "pandas is kept out of this process until shared.pandas_gate.load_pandas() is "
                "called (it holds about 30 MB; the alert path does not need it)", name=name)


_GATE = _PandasGate()


def keep_pandas_out() -> None:
    """Close the gate, unless pandas is loaded already (then there is nothing to keep out)."""
    if "pandas" not in sys.modules and _GATE not in sys.meta_path:
        sys.meta_path.insert(0, _GATE)


def pandas_kept_out() -> bool:
    return _GATE in sys.meta_path


def load_pandas() -> ModuleType:
    """pandas, imported on first need (opening the gate if it was closed)."""
    was_kept_out = _GATE in sys.meta_path
    if was_kept_out:
        sys.meta_path.remove(_GATE)
    import pandas
    if was_kept_out:
        _tell_libraries()
    return pandas


def _tell_libraries() -> None:
    """pyarrow's pandas shim asks again when asked insistently (it was told pandas is absent);
    clickhouse-connect caches the module it found, None included."""
    arrow = sys.modules.get("pyarrow.lib")
    if arrow is not None:
        arrow._pandas_api.pd  # noqa: B018 - the property re-imports and records pandas
    options = sys.modules.get("clickhouse_connect.driver.options")
    if options is not None and vars(options).get("pd", True) is None:
        for name in ("pd", "pd_time_test"):  # resolved again, now to pandas, at their next use
            vars(options).pop(name, None)
