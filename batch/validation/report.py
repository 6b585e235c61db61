"""The validation's files in the version's report folder: ``validation.json`` (every check with
its figures and limits), ``validation.txt`` (one page for whoever signs the promotion off) and
``validation_recall_at_capacity.png`` (candidate and champion together)."""

from __future__ import annotations

from pathlib import Path

import orjson

from batch.capacity import capacity_table
from batch.report import NO_PLOTS, plot_capacity, plt
from batch.validation.status import VALIDATION_FILE

SUMMARY_FILE = "validation.txt"
PLOT_FILE = "validation_recall_at_capacity.png"


def summary(report: dict) -> list[str]:
    lines = [f"validation of {report['version']} — {'PASSED' if report['passed'] else 'FAILED'}",
             f"range {report['range']['networks']} {report['range']['start']}..{report['range']['end']}"
             f" w{report['range']['window_days']}: {report['alerts']:,} alerts, "
             f"{report['labelled']:,} labelled; champion {report['champion'] or 'none'}", ""]
    for name, check in report["checks"].items():
        mark = "pass" if check["passed"] else "FAIL"
        lines.append(f"[{mark}] {name:<13} {check['why']}".rstrip())
        for key, value in check["figures"].items():
            if not isinstance(value, dict):
                limit = check["limits"].get(key)
                lines.append(f"         {key:<32} {value}" + (f"   limit {limit}" if limit is not None else ""))
            else:
                lines.append(f"         {key:<32} " + ", ".join(f"{k} {v}" for k, v in value.items()))
    for name, points in report["capacity"].items():
        lines += ["", f"{name} ({points['version']}) at a review capacity of "
                      f"{points['review_capacity']} alerts a day:", *capacity_table(points)]
    return lines


def write(directory: Path, report: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if plt is not None and report["capacity"]:
        plot_capacity({f"{k} {v['version']}": v for k, v in report["capacity"].items()},
                      directory / PLOT_FILE)
        report["plot"] = PLOT_FILE
    else:
        report["plot_left_out"] = NO_PLOTS
    (directory / SUMMARY_FILE).write_text("\n".join(summary(report)) + "\n")
    path = directory / VALIDATION_FILE
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path
