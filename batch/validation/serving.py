"""Serving: the read API's queries answer for the scored range. The candidate's scores go to a
scratch database of their own on the same engine (never to the served tables), and the read
API's own query layer (:class:`shared.clickhouse.score_reads.ScoreReads`, under the read limits)
pages through each day's queue and finds single alerts. The scratch database is dropped after."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from batch.validation.checks import Check, Scored
from shared.clickhouse.connection import check_identifier
from shared.clickhouse.ddl import schema_statements
from shared.clickhouse.disposition_store import DispositionStore
from shared.clickhouse.score_reads import ScoreReads, read_limits
from shared.clickhouse.score_store import ScoreStore
from shared.read_api import MAX_PAGE, NotFound, ReadRequest, answer, parse_page

HISTORY_SAMPLE = 20


def serving(client: Client | None, database: str, scored: Scored) -> Check:
    if client is None:
        return Check("serving", True, {}, {}, "no ClickHouse engine at hand: not checked")
    scratch = check_identifier(f"{database}_validation", "database")
    client.command(f"DROP DATABASE IF EXISTS {scratch}")
    client.command(f"CREATE DATABASE {scratch}")
    try:
        for statement in schema_statements(scratch):
            client.command(statement)
        frame = scored.frame
        ScoreStore(client, scratch).write_alert_scores(frame, "backfill", dt.datetime.now(dt.UTC))
        reads = ScoreReads(client, scratch, read_limits(30, 1 << 30))
        return _read_back(reads, DispositionStore(client, scratch), frame, scored.version)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {scratch}")


def _read_back(reads: ScoreReads, decisions: DispositionStore, frame: pd.DataFrame, version: str) -> Check:
    days = frame.groupby(["network", "processing_date", "window_days"], sort=True)
    pages, mismatched, missing = 0, [], 0
    for (network, date, window), rows in days:
        expected = rows.sort_values(["rank_score", "alert_id"], ascending=[False, True],
                                    kind="stable")["alert_id"].head(MAX_PAGE).tolist()
        page = parse_page({"network": network, "date": str(date), "window_days": str(window),
                           "limit": str(MAX_PAGE), "model_version": version})
        body = answer(reads, decisions, ReadRequest(what="scores", page=page), version)
        pages += 1
        if body["total"] != len(rows) or [i["alert_id"] for i in body["items"]] != expected:
            mismatched.append(f"{network} {date} w{window}")
    rng = np.random.default_rng(7)
    ids = frame["alert_id"].astype(str).to_numpy()
    for alert_id in rng.choice(ids, size=min(HISTORY_SAMPLE, len(ids)), replace=False):
        try:
            body = answer(reads, decisions, ReadRequest(what="alert", alert_id=str(alert_id)), version)
        except NotFound:
            missing += 1
            continue
        if not any(r["model_version"] == version for r in body["scores"]):
            missing += 1
    figures = {"days": pages, "days_mismatched": len(mismatched), "alerts_looked_up":
               min(HISTORY_SAMPLE, len(ids)), "alerts_not_found": missing}
    failed = []
    if mismatched:
        failed.append("pages differ from the ranked order: " + ", ".join(mismatched[:3]))
    if missing:
        failed.append(f"{missing} alerts not found by /alerts/{{id}}")
    return Check("serving", not failed, figures, {"days_mismatched": 0, "alerts_not_found": 0},
                 "; ".join(failed))
