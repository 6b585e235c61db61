"""The worker's faust.App subclass: what it sets that Faust does not expose."""


def test_worker_app_sets_the_fetch_wait_aiokafka_reads():
    import asyncio

    import aiokafka

    from shared.kafka_security import KafkaSecurity
    from shared.settings import Settings
    from stream.app import faust_app

    async def build():
        app = faust_app(Settings(fetch_max_wait_ms=15, kafka_bootstrap="127.0.0.1:1"), KafkaSecurity())
        return app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert isinstance(consumer, aiokafka.AIOKafkaConsumer)
    assert consumer._fetch_max_wait_ms == 15  # the attribute AIOKafkaConsumer.start() passes on


def test_the_worker_consumer_gets_the_same_kafka_security_as_every_other_client():
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from shared.kafka_security import kafka_security
    from shared.settings import Settings
    from stream.app import broker_credentials

    for protocol, mechanism in (("SASL_SSL", "SCRAM-SHA-512"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
                                ("SSL", None), ("PLAINTEXT", None)):
        security = kafka_security(Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                                           kafka_username="scorer", kafka_password="secret-pass"))
        faust_side = credentials_to_aiokafka_auth(broker_credentials(security))
        ours = security.client_options()
        assert faust_side["security_protocol"] == ours["security_protocol"] == protocol
        for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            assert faust_side.get(key) == ours.get(key), (protocol, key)
        assert (faust_side.get("ssl_context") is not None) == (protocol in ("SSL", "SASL_SSL"))


def test_the_pipeline_gets_the_worker_settings_each_to_its_own_field():
    from shared.settings import Settings
    from stream.app import pipeline_config

    settings = Settings(scores_topic="s", dlq_topic="d", batch_size=7, batches_in_flight=3,
                        retry_max_delay=4.5, cluster_member_wait=1.5, model_poll_interval=9.0,
                        batch_max_bytes=65536)
    config = pipeline_config(settings)
    assert (config.scores_topic, config.dlq_topic, config.batch_size, config.batches_in_flight) == ("s", "d", 7, 3)
    assert (config.retry_max_delay, config.cluster_member_wait, config.model_poll_interval) == (4.5, 1.5, 9.0)
    assert config.batch_max_bytes == 65536
