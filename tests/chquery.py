"""`python -m tests.chquery HOME SQL [PARAMS_JSON]`: run one query on the embedded ClickHouse of
an amlscore home in a process of its own (chdb allows one data directory per process) and print
the rows as JSON."""

from __future__ import annotations

import sys

import orjson


def main() -> None:
    from shared.clickhouse import connect, parse_clickhouse_url

    home, sql = sys.argv[1], sys.argv[2]
    params = orjson.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    client = connect(parse_clickhouse_url(f"chdb://{home}/chdb", "amlscore"))
    result = client.query(sql, parameters=params)
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    sys.stdout.write(orjson.dumps(rows, default=str).decode())


if __name__ == "__main__":
    main()
