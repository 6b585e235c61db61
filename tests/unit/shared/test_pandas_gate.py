"""The scoring process keeps pandas out until something needs it; then pandas, pyarrow's
conversions and clickhouse-connect's frames all work as if it had been there from the start.
Each case runs in a fresh interpreter (pandas, once imported, stays for the process's life)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[3]


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_arrow_conversions_behind_the_gate_load_no_pandas():
    out = run("""
        import sys
        import numpy as np, pyarrow as pa, pyarrow.compute as pc
        from shared.pandas_gate import keep_pandas_out, pandas_kept_out
        keep_pandas_out()
        table = pa.Table.from_pydict({"a": np.array([1.0, np.nan]), "b": ["x", None], "d": [None, 2]})
        values = table.column("a").to_numpy()
        assert pc.fill_null(table.column("d"), 0).to_numpy().tolist() == [0, 2]
        assert pa.array([1.5, None]).to_numpy(zero_copy_only=False)[0] == 1.5
        try:
            import pandas
        except ModuleNotFoundError as exc:
            print("refused:", "load_pandas()" in str(exc))
        print("pandas" in sys.modules, pandas_kept_out())
    """)
    assert out.splitlines() == ["refused: True", "False True"]


CONVERSIONS = """
    frame = pa.table({"a": [1, None], "s": ["x", "y"]}).to_pandas()
    back = pa.Table.from_pandas(pd.DataFrame({"c": pd.Categorical(["u", "v", "u"]), "n": [1.0, np.nan, 2.0]}))
    print(frame.dtypes.astype(str).tolist(), frame["a"].isna().tolist(), back.schema)
    print(pa.array(pd.Series([1.0, np.nan]), from_pandas=True).null_count, back.column("n").null_count)
"""


def test_load_pandas_opens_the_gate_and_the_libraries_see_pandas_again():
    gated = run(textwrap.dedent("""
        import numpy as np, pyarrow as pa
        import clickhouse_connect.driver.options as options
        from shared.pandas_gate import keep_pandas_out, load_pandas, pandas_kept_out
        keep_pandas_out()
        pa.array([1.0, None])                      # pyarrow asked, and was told: no pandas
        assert pa.lib._pandas_api.have_pandas is False
        assert options.pd is None                  # clickhouse-connect cached the absence
        pd = load_pandas()
        print(pa.lib._pandas_api.have_pandas, options.pd is pd, pandas_kept_out())
    """) + "\n" + textwrap.dedent(CONVERSIONS))
    plain = run(textwrap.dedent("""
        import numpy as np, pyarrow as pa, pandas as pd
        print(True, True, False)
    """) + "\n" + textwrap.dedent(CONVERSIONS))
    assert gated.splitlines()[0] == "True True False"
    assert gated == plain


def test_the_gate_closes_nothing_once_pandas_is_loaded():
    out = run("""
        import sys, pandas
        from shared.pandas_gate import keep_pandas_out, load_pandas, pandas_kept_out
        keep_pandas_out()
        print(pandas_kept_out(), load_pandas() is pandas)
    """)
    assert out == "False True"
