import pytest

from shared.errors import ModelLoadError
from shared.registry import PROMOTED_FILE, DirectoryModelRegistry
from shared.scoring import ScoringPolicy
from stream.model_holder import ModelHolder


def _save(registry, bundle, version):
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        model = getattr(bundle, name)
        registry.save(version, name, model.booster, model.metadata)


def test_startup_without_a_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelLoadError, match="amlscore train"):
        ModelHolder(DirectoryModelRegistry(tmp_path), ScoringPolicy()).load_initial()


def test_swaps_to_a_promoted_version_and_refuses_a_broken_one(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    _save(registry, bundle, "v2")
    registry.promote("v1")
    holder = ModelHolder(registry, ScoringPolicy())
    before = holder.load_initial()
    assert holder.refresh() is None  # nothing new
    registry.promote("v2")
    assert holder.refresh() == "v2" and holder.scoring.model_version == "v2"
    assert before.model_version == "v1"  # a batch holding the old object is unaffected
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "alert_scorer.ubj").write_bytes(b"garbage")
    (tmp_path / PROMOTED_FILE).write_text('{"model_version": "v3"}')
    assert holder.refresh() is None
    assert holder.scoring.model_version == "v2" and holder.status.failed == 1
    assert holder.refresh() is None and holder.status.failed == 1  # refused once, not every poll
    (tmp_path / PROMOTED_FILE).write_text("{broken")
    assert holder.refresh() is None and holder.scoring.model_version == "v2"


def test_worker_app_sets_the_fetch_wait_aiokafka_reads():
    import asyncio

    import aiokafka

    from shared.settings import Settings
    from stream.app import faust_app

    async def build():
        app = faust_app(Settings(fetch_max_wait_ms=15, kafka_bootstrap="127.0.0.1:1"))
        return app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert isinstance(consumer, aiokafka.AIOKafkaConsumer)
    assert consumer._fetch_max_wait_ms == 15  # the attribute AIOKafkaConsumer.start() passes on
