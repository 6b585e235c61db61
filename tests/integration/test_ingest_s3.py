"""`ingest --source s3://…` against a real S3-protocol server on loopback (moto's server)."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from amlscore.local_broker import free_port
from batch.ingest import ingest_source
from batch.sot_reader import open_source
from shared.clickhouse.raw_store import RawStore

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    # credentials come from the environment, as in production (any value satisfies moto)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_ingest_from_s3_loads_the_same_rows_as_from_disk(chdb_client, database, small_sot, s3_endpoint):
    host = s3_endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True)
    fs.create_dir("sot-bucket")
    pafs.copy_files(str(small_sot), "sot-bucket/history", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    raw = RawStore(chdb_client, database)
    s3fs, root = open_source("s3://sot-bucket/history", s3_endpoint)
    report = ingest_source(raw, s3fs, root)
    assert report.ok and len(report.ingested) == 6 and report.labels["ethereum"] > 0
    local_fs, local_root = open_source(str(small_sot))
    from batch.sot_reader import discover_batches, read_batch
    for key in discover_batches(local_fs, local_root):
        expected = read_batch(local_fs, local_root, key).counts["alerts"]
        assert raw.count("raw_alerts", key.network, key.processing_date, key.window_days) == expected
