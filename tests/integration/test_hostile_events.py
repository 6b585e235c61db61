"""Events that used to stop the worker, on the real broker and engine, with the default limits
(the poison test's 64 KiB limit hid the first): an event too large to dead-letter whole travels
compact, and events carrying a thousand feature names of their own each are scored like any."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from tests.stream_harness import LAST, home_copy, produce, read_topic, sot_records, stream_env

pytestmark = pytest.mark.integration


def test_an_oversize_event_and_feature_name_floods_do_not_stop_the_worker(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    env = stream_env(home, broker)
    env.pop("AMLSCORE_MAX_MESSAGE_BYTES")  # the default: 1 MiB
    worker = spawn(env)
    records, report = sot_records(broker, prepared["sot"], LAST, features="embed", clusters=False)
    flooded = []
    for i, (topic, key, value) in enumerate(records[:300]):  # 300 × 1,000 distinct names
        event = orjson.loads(value)
        event["features"] = {**{f"junk_{i}_{k}": float(k) for k in range(1000 - len(event["features"]))},
                             **event["features"]}
        flooded.append((topic, key, orjson.dumps(event)))
    huge = orjson.dumps({**orjson.loads(records[-1][2]), "alert_id": "huge", "pad": "x" * 1_500_000})
    produce(broker.bootstrap, flooded + records[300:] + [(broker.topics["alerts"], b"huge", huge)])

    worker.wait_for('amlscore_scored_total{kind="alert"}', report.alerts, timeout=180)
    (letter,) = read_topic(broker.bootstrap, broker.topics["dlq"], expected=1, timeout=60)
    headers = dict(letter.headers)
    assert headers["dlq.reason"] == b"oversize" and headers["dlq.truncated"] == b"true"
    assert int(headers["dlq.original_size"]) == len(huge) and len(letter.value) == 4096
    assert headers["dlq.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert worker.get("/live")[0] == 200 and worker.metric("amlscore_scoring_process_restarts") == 0
    assert worker.stop() == 0
