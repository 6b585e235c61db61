"""Names and paths of the SOT batch layout ({root}/{network}/{date}/{window}/…), shared by writer and reader."""

from __future__ import annotations

import datetime as dt

SOT_FILES = ("alerts.parquet", "features.parquet", "clusters.parquet", "money_flows.parquet")
META_FILE = "META.json"
TRUTH_FILE = "_truth.parquet"
LABELS_DIR = "address-labels"


def batch_path(root: str, network: str, processing_date: dt.date, window_days: int) -> str:
    return f"{root.rstrip('/')}/{network}/{processing_date.isoformat()}/{window_days}"


def labels_path(root: str, network: str) -> str:
    return f"{root.rstrip('/')}/{LABELS_DIR}/{network}_address_labels.parquet"
