"""Synthetic SOT batches with a known truth.

Each address has a latent illicitness ``z``; the probability that it is illicit is
``p = sigmoid(a + b·z)`` and its status is drawn from that. ``z`` drives (with noise, fresh every
day) the address's features, its alerts' typology, severity, confidence and volume. Only a minority
of addresses are labelled. ``p`` is written beside each batch as ``_truth.parquet`` (alert_id,
p_illicit), so the best achievable AUC (the oracle's) can be computed on held-out data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from batch.decisions_sim import TeamConfig, decide_day, decisions_table
from batch.sot_layout import META_FILE, TRUTH_FILE, batch_path, labels_path

# typology: (pattern_type, affinity to illicit, severity offset)
TYPOLOGIES: dict[str, tuple[str, float, float]] = {
    "peel_chain": ("graph_pattern", 1.1, 0.6),
    "layering": ("graph_pattern", 0.9, 0.5),
    "mixing": ("graph_pattern", 1.4, 0.9),
    "structuring": ("amount_pattern", 0.8, 0.3),
    "smurfing": ("amount_pattern", 0.6, 0.2),
    "round_trip": ("graph_pattern", 0.4, 0.1),
    "rapid_movement": ("temporal_pattern", 0.3, 0.0),
    "fan_in": ("graph_pattern", 0.0, -0.2),
    "fan_out": ("graph_pattern", 0.1, -0.1),
    "large_transfer": ("amount_pattern", -0.4, 0.2),
    "dormant_reactivation": ("temporal_pattern", -0.2, -0.3),
    "new_address_high_volume": ("temporal_pattern", -0.3, -0.4),
}
# indicator: (base logit, slope on z)
RISK_INDICATORS: dict[str, tuple[float, float]] = {
    "high_velocity": (-1.2, 0.9),
    "mixer_interaction": (-2.5, 1.3),
    "round_amounts": (-1.0, 0.5),
    "new_counterparties": (-0.5, 0.3),
    "cross_chain_hop": (-2.0, 0.8),
    "dust_inputs": (-1.8, 0.4),
    "sanctioned_proximity": (-3.0, 1.2),
    "exchange_deposit": (-0.3, -0.6),
    "large_single_tx": (-1.0, 0.0),
    "night_activity": (-1.2, 0.2),
}
ENTITY_TYPES: dict[str, tuple[float, tuple[str, ...]]] = {  # type: (slope on z, subtypes)
    "individual": (0.0, ("wallet", "hardware_wallet")),
    "exchange": (-0.8, ("cex_hot_wallet", "cex_deposit")),
    "merchant": (-0.5, ("payment_processor", "shop")),
    "defi": (0.1, ("dex_router", "lending_pool", "bridge")),
    "mixer": (1.6, ("coinjoin", "tumbler")),
    "unknown": (0.4, ("unclassified",)),
}
SEVERITIES = np.array(["low", "medium", "high", "critical"])
ILLICIT_LABELS = ("scam", "ransomware", "darknet_market", "mixer_operator", "sanctioned", "theft")
LICIT_LABELS = ("exchange", "merchant", "defi_protocol", "individual_wallet")
LOGIT_SLOPE = 2.4
TARGET_PREVALENCE = 0.05
LABELLED_SHARE = 0.35
FEATURE_MISSING_RATE = 0.04
DISPOSITIONS_FILE = "dispositions.parquet"


@dataclass(frozen=True)
class SynthConfig:
    out: Path
    networks: tuple[str, ...] = ("ethereum",)
    start: dt.date = dt.date(2025, 1, 1)
    days: int = 14
    alerts_per_day: int = 3000
    window_days: int = 7
    seed: int = 7
    labelled_share: float = LABELLED_SHARE  # addresses in the address-label file
    team: TeamConfig | None = None          # simulate investigators' decisions (dispositions.parquet)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _intercept(rng: np.random.Generator) -> float:
    """The intercept that gives TARGET_PREVALENCE for z ~ N(0, 1) (bisection, deterministic)."""
    z = rng.standard_normal(200_000)
    low, high = -12.0, 2.0
    for _ in range(60):
        mid = (low + high) / 2
        if sigmoid(mid + LOGIT_SLOPE * z).mean() < TARGET_PREVALENCE:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def alert_id(address: str, typology: str, processing_date: dt.date) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{address}-{typology}-{processing_date.isoformat()}"))


@dataclass
class _Population:
    addresses: np.ndarray
    z: np.ndarray
    p: np.ndarray
    illicit: np.ndarray
    entity: np.ndarray
    activity: np.ndarray
    first_seen: np.ndarray


def _population(network: str, size: int, rng: np.random.Generator, start: dt.date) -> _Population:
    z = rng.standard_normal(size)
    p = sigmoid(_intercept(rng) + LOGIT_SLOPE * z)
    illicit = rng.random(size) < p
    prefix = "0x" if network not in ("bitcoin", "litecoin") else "bc1q"
    addresses = np.array(
        [prefix + hashlib.sha256(f"{network}:{i}".encode()).hexdigest()[:40] for i in range(size)]
    )
    names = list(ENTITY_TYPES)
    logits = np.stack([ENTITY_TYPES[n][0] * z for n in names], axis=1) + rng.gumbel(size=(size, len(names)))
    logits[:, 0] += 1.0  # individuals are the common case
    entity = np.array(names)[logits.argmax(axis=1)]
    activity = np.exp(0.3 * z + 0.8 * rng.standard_normal(size))
    epoch = dt.datetime.combine(start, dt.time(), dt.UTC).timestamp()
    age_days = np.exp(5.5 - 0.4 * z + 0.9 * rng.standard_normal(size))
    return _Population(addresses, z, p, illicit, entity, activity,
                       (epoch - age_days * 86400).astype(np.int64))


def _with_missing(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = values.astype(np.float64)
    out[rng.random(len(out)) < FEATURE_MISSING_RATE] = np.nan
    return out


def _features(pop: _Population, idx: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    z = pop.z[idx]
    n = len(idx)

    def noise(scale: float) -> np.ndarray:
        return scale * rng.standard_normal(n)

    degree_in = rng.poisson(np.exp(1.5 + 0.4 * z + noise(0.8)))
    degree_out = rng.poisson(np.exp(1.5 + 0.6 * z + noise(0.8)))
    tx_total = degree_in + degree_out + rng.poisson(3, n)
    counterparties = np.minimum(tx_total, rng.poisson(np.exp(1.2 + 0.5 * z + noise(0.6))))
    total_in = np.exp(8.0 + 0.5 * z + noise(1.5))
    features = {
        "degree_in": degree_in,
        "degree_out": degree_out,
        "total_in_usd": np.round(total_in, 2),
        "total_out_usd": np.round(total_in * np.exp(0.15 * z + noise(0.3)), 2),
        "tx_total_count": tx_total,
        "unique_counterparties": counterparties,
        "avg_tx_in_usd": np.round(total_in / np.maximum(degree_in, 1), 2),
        "max_tx_usd": np.round(total_in * rng.beta(2, 3, n), 2),
        "reciprocity_ratio": sigmoid(-0.9 * z + noise(0.6)),
        "velocity_score": sigmoid(1.0 * z + noise(0.45)),
        "structuring_score": sigmoid(0.8 * z - 0.5 + noise(0.6)),
        "pagerank": np.exp(-9.0 + noise(0.7)),
        "kcore": rng.poisson(2.0, n),
        "khop1_count": counterparties + rng.poisson(5, n),
        "behavioral_anomaly_score": sigmoid(1.1 * z + noise(0.4)),
        "is_mixer_like": (rng.random(n) < sigmoid(2.0 * z - 3.5)).astype(np.float64),
        "is_exchange_like": (pop.entity[idx] == "exchange").astype(np.float64),
        "first_activity_timestamp": pop.first_seen[idx].astype(np.float64),
    }
    return {name: _with_missing(values, rng) for name, values in features.items()}


def _day(
    network: str, date: dt.date, cfg: SynthConfig, pop: _Population, rng: np.random.Generator
) -> dict[str, pa.Table]:
    n_active = max(1, round(cfg.alerts_per_day / 1.35))
    weights = pop.activity / pop.activity.sum()
    active = np.sort(rng.choice(len(pop.z), size=min(n_active, len(pop.z)), replace=False, p=weights))
    z = pop.z[active]
    typology_names = np.array(list(TYPOLOGIES))
    affinity = np.array([TYPOLOGIES[t][1] for t in typology_names])
    per_address = np.minimum(1 + rng.poisson(0.35, len(active)), 4)
    logits = 0.9 * z[:, None] * affinity[None, :] + rng.gumbel(size=(len(active), len(affinity)))
    chosen = np.argsort(-logits, axis=1)
    rows_address, rows_typology = [], []
    for i, k in enumerate(per_address):
        rows_address += [i] * int(k)
        rows_typology += list(chosen[i, :k])
    a_idx = np.array(rows_address)
    t_idx = np.array(rows_typology)
    n = len(a_idx)
    za = z[a_idx]
    addr = pop.addresses[active][a_idx]
    typ = typology_names[t_idx]
    sev_offset = np.array([TYPOLOGIES[t][2] for t in typology_names])[t_idx]
    severity = SEVERITIES[np.digitize(0.9 * za + sev_offset + 0.8 * rng.standard_normal(n), [-0.3, 0.7, 1.6])]
    confidence = np.round(sigmoid(0.9 * za + 0.7 * rng.standard_normal(n)), 4)
    confidence[rng.random(n) < 0.03] = np.nan
    volume = np.round(np.exp(7.5 + 0.45 * za + 1.6 * rng.standard_normal(n)), 2)
    indicator_names = list(RISK_INDICATORS)
    ind_p = np.stack([sigmoid(b + w * za) for b, w in RISK_INDICATORS.values()], axis=1)
    ind_hit = rng.random(ind_p.shape) < ind_p
    entity = pop.entity[active][a_idx].copy()
    entity[rng.random(n) < 0.1] = "unknown"
    subtype = np.array([ENTITY_TYPES[e][1][int(h) % len(ENTITY_TYPES[e][1])]
                        for e, h in zip(entity, rng.integers(0, 1 << 30, n), strict=True)])
    ids = [alert_id(a, t, date) for a, t in zip(addr, typ, strict=True)]
    alerts = pa.table({
        "alert_id": ids,
        "processing_date": pa.array([date] * n, pa.date32()),
        "window_days": pa.array([cfg.window_days] * n, pa.int32()),
        "address": addr,
        "typology_type": typ,
        "pattern_id": [f"{t}_{h[:12]}" for t, h in zip(typ, ids, strict=True)],
        "pattern_type": [TYPOLOGIES[t][0] for t in typ],
        "severity": severity,
        "suspected_address_type": entity,
        "suspected_address_subtype": subtype,
        "alert_confidence_score": confidence,
        "description": [f"{t.replace('_', ' ')} pattern around {a[:12]}…" for t, a in zip(typ, addr, strict=True)],
        "volume_usd": volume,
        "evidence_json": [orjson.dumps({"volume_usd": float(v), "window_days": cfg.window_days}).decode() for v in volume],
        "risk_indicators": pa.array(
            [[indicator_names[j] for j in np.flatnonzero(row)] for row in ind_hit], pa.list_(pa.string())
        ),
    })
    truth = pa.table({"alert_id": ids, "p_illicit": pop.p[active][a_idx],
                      "illicit": pop.illicit[active][a_idx]})

    feats = _features(pop, active, rng)
    features = pa.table({
        "processing_date": pa.array([date] * len(active), pa.date32()),
        "window_days": pa.array([cfg.window_days] * len(active), pa.int32()),
        "address": pop.addresses[active],
        **feats,
    })

    multi = np.flatnonzero(per_address >= 2)
    clusters = _clusters(date, multi, per_address, pop.addresses[active], ids, severity, volume, confidence, a_idx)
    flows = _money_flows(date, cfg, pop, active, rng)
    return {"alerts.parquet": alerts, "features.parquet": features, "clusters.parquet": clusters,
            "money_flows.parquet": flows, TRUTH_FILE: truth}


def _clusters(date, multi, per_address, addresses, ids, severity, volume, confidence, a_idx) -> pa.Table:
    """same_entity clusters: an address with ≥ 2 alerts on the date."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows: dict[str, list] = {k: [] for k in (
        "cluster_id", "cluster_type", "primary_address", "primary_alert_id", "related_alert_ids",
        "addresses_involved", "total_alerts", "total_volume_usd", "severity_max", "confidence_avg")}
    for i in multi:
        members = np.flatnonzero(a_idx == i)
        primary = members[np.argmax([rank[severity[m]] for m in members])]
        address = str(addresses[i])
        rows["cluster_id"].append(str(uuid.uuid5(uuid.NAMESPACE_DNS, f"same_entity-{address}-{date.isoformat()}")))
        rows["cluster_type"].append("same_entity")
        rows["primary_address"].append(address)
        rows["primary_alert_id"].append(ids[primary])
        rows["related_alert_ids"].append([ids[m] for m in members])
        rows["addresses_involved"].append([address])
        rows["total_alerts"].append(len(members))
        rows["total_volume_usd"].append(float(np.round(volume[members].sum(), 2)))
        rows["severity_max"].append(str(severity[primary]))
        rows["confidence_avg"].append(float(np.nanmean(confidence[members])) if np.isfinite(confidence[members]).any() else None)
    return pa.table({
        **{k: rows[k] for k in ("cluster_id", "cluster_type", "primary_address", "primary_alert_id")},
        "related_alert_ids": pa.array(rows["related_alert_ids"], pa.list_(pa.string())),
        "addresses_involved": pa.array(rows["addresses_involved"], pa.list_(pa.string())),
        "total_alerts": pa.array(rows["total_alerts"], pa.int32()),
        "total_volume_usd": pa.array(rows["total_volume_usd"], pa.float64()),
        "severity_max": pa.array(rows["severity_max"], pa.string()),
        "confidence_avg": pa.array(rows["confidence_avg"], pa.float64()),
    })


def _money_flows(date, cfg: SynthConfig, pop: _Population, active, rng) -> pa.Table:
    edges = 1 + rng.poisson(2.0, len(active))
    src = np.repeat(active, edges)
    illicit_pool = np.flatnonzero(pop.illicit)
    random_dst = rng.integers(0, len(pop.z), len(src))
    dirty = pop.illicit[src] & (rng.random(len(src)) < 0.5) & (len(illicit_pool) > 0)
    dst = np.where(dirty, illicit_pool[rng.integers(0, max(len(illicit_pool), 1), len(src))], random_dst)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    pairs = np.unique(np.stack([src, dst], axis=1), axis=0)
    m = len(pairs)
    end = int(dt.datetime.combine(date, dt.time(), dt.UTC).timestamp())
    first = end - rng.integers(3600, cfg.window_days * 86400, m)
    reciprocity = np.round(rng.beta(1, 3, m), 4)
    return pa.table({
        "from_address": pop.addresses[pairs[:, 0]],
        "to_address": pop.addresses[pairs[:, 1]],
        "tx_count": pa.array(1 + rng.poisson(3, m), pa.int64()),
        "amount_usd_sum": np.round(np.exp(7 + 1.5 * rng.standard_normal(m)), 2),
        "first_seen_timestamp": pa.array(first, pa.int64()),
        "last_seen_timestamp": pa.array(first + rng.integers(0, 3600, m), pa.int64()),
        "reciprocity_ratio": reciprocity,
        "is_bidirectional": pa.array(reciprocity > 0.3, pa.bool_()),
    })


def _labels(network: str, pop: _Population, rng: np.random.Generator, share: float) -> pa.Table:
    labelled = np.flatnonzero(rng.random(len(pop.z)) < share)
    bad = pop.illicit[labelled]
    risk = np.where(bad, np.where(rng.random(len(labelled)) < 0.6, "high", "critical"),
                    np.where(rng.random(len(labelled)) < 0.75, "low", "medium"))
    label = np.where(bad, np.array(ILLICIT_LABELS)[rng.integers(0, len(ILLICIT_LABELS), len(labelled))],
                     np.array(LICIT_LABELS)[rng.integers(0, len(LICIT_LABELS), len(labelled))])
    return pa.table({
        "network": [network] * len(labelled),
        "address": pop.addresses[labelled],
        "label": label,
        "address_type": pop.entity[labelled],
        "risk_level": risk,
        "confidence_score": np.round(rng.uniform(0.6, 1.0, len(labelled)), 3),
    })


def write_parquet(table: pa.Table, path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path.read_bytes()


def generate(cfg: SynthConfig, progress=None) -> list[Path]:  # noqa: ANN001
    """Write ``cfg.days`` batches per network under ``cfg.out``; return the batch directories.
    With ``cfg.team``, the simulated team's decisions go to ``{out}/dispositions.parquet`` (beside
    the batches, not part of them: investigators' decisions are not SOT data)."""
    written: list[Path] = []
    decisions: list[dict] = []
    now = dt.datetime.now(dt.UTC)
    for network in cfg.networks:
        rng = np.random.default_rng([cfg.seed, zlib.crc32(network.encode())])
        pop = _population(network, max(2000, cfg.alerts_per_day * 4), rng, cfg.start)
        write_parquet(_labels(network, pop, rng, cfg.labelled_share),
                      Path(labels_path(str(cfg.out), network)))
        team_rng = np.random.default_rng([cfg.seed, zlib.crc32(network.encode()), 1])
        for offset in range(cfg.days):
            date = cfg.start + dt.timedelta(days=offset)
            directory = Path(batch_path(str(cfg.out), network, date, cfg.window_days))
            tables = _day(network, date, cfg, pop, rng)
            if cfg.team is not None:
                truth = tables[TRUTH_FILE]
                decisions += decide_day(network, date, cfg.window_days, tables["alerts.parquet"],
                                        truth.column("illicit").to_numpy(), cfg.team, team_rng, now)
            digests, counts = {}, {}
            for name, table in tables.items():
                data = write_parquet(table, directory / name)
                if name != TRUTH_FILE:
                    digests[name] = hashlib.sha256(data).hexdigest()
                    counts[name.removesuffix(".parquet")] = table.num_rows
            meta = {"schema_version": 1, "network": network, "processing_date": date.isoformat(),
                    "window_days": cfg.window_days, "counts": counts, "sha256": digests}
            (directory / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
            written.append(directory)
            if progress is not None:
                progress(1)
    if cfg.team is not None:
        write_parquet(decisions_table(decisions), Path(cfg.out) / DISPOSITIONS_FILE)
    return written
