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
