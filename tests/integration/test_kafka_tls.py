"""Kafka over TLS with a client certificate (mTLS), end to end: a real handshake through a TLS
terminator (stunnel4) in front of Tansu, with a CA and certificates made by the test. The worker
is started by the CLI in an empty directory with only the documented settings; replay publishes
and the test reads the scores over the same TLS path; a plaintext client is refused."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from amlscore.local_broker import LocalBroker, free_port
from shared.kafka_io import ensure_topics, read_topic
from shared.kafka_security import kafka_security
from shared.settings import Settings
from tests.backends import KafkaTarget
from tests.stream_harness import LAST, PYTHON, WorkerProcess, cli, home_copy, stream_env
from tests.tls import make_certificates, stunnel_binary, tls_terminator

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(stunnel_binary() is None, reason="stunnel4 not installed (.ci/run installs it)")]


def test_worker_replay_and_reads_over_mutual_tls(prepared, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    plain, tls = free_port(), free_port()
    target = KafkaTarget(f"127.0.0.1:{tls}", "tansu+stunnel")
    security = {"AMLSCORE_KAFKA_SECURITY_PROTOCOL": "SSL", "AMLSCORE_KAFKA_CA_FILE": str(certs.ca),
                "AMLSCORE_KAFKA_CERT_FILE": str(certs.client_cert),
                "AMLSCORE_KAFKA_KEY_FILE": str(certs.client_key)}
    options = kafka_security(Settings(kafka_security_protocol="SSL", kafka_ca_file=certs.ca,
                                      kafka_cert_file=certs.client_cert,
                                      kafka_key_file=certs.client_key)).client_options()
    home = home_copy(prepared, tmp_path / "home")
    env = stream_env(home, target, **security)
    empty = tmp_path / "empty"
    empty.mkdir()
    with LocalBroker(port=plain, advertised_port=tls, log_path=tmp_path / "tansu.log"), \
            tls_terminator(tls, plain, certs, tmp_path):
        asyncio.run(ensure_topics(target.bootstrap, target.topics.values(), 4, options))
        worker = WorkerProcess(env, tmp_path / "worker.log", cwd=empty)
        try:
            worker.start(ready_timeout=90)
            done = cli(env, "replay", "--source", str(prepared["sot"]), "--start", LAST.isoformat(),
                       "--end", LAST.isoformat(), "--no-clusters")
            alerts = int(done.stdout.split("published ")[1].split(" alerts")[0])
            scores = asyncio.run(read_topic(target.bootstrap, target.topics["scores"], expected=alerts,
                                            timeout=120, options=options))
            assert len({r.key for r in scores}) == alerts > 0
            assert worker.metric("amlscore_scored_total") >= alerts
        finally:
            assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]

        # the same port refuses a client that does not speak TLS, in one line
        plain_env = stream_env(home, target)
        refused = subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", "dlq"],
                                 env=plain_env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "cannot reach Kafka" in refused.stderr
        assert "Traceback" not in refused.stderr
