"""`python -m tests.benchmarks.run [batch] [--alerts N] [--json FILE]`: print a table, write JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", nargs="?", default="batch", choices=["batch"])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args()
    from tests.benchmarks import batch_bench
    results = batch_bench.run(args.alerts)
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
