"""Every ClickHouse call is watched: one that outlives the limit is handed on, named."""

import threading
import time

from shared.clickhouse.deadline import Deadline, TimedClient, oldest_call


class StuckEngine:
    """A client whose queries never return (until released), like the engine that hung."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def query(self, sql, parameters=None):  # noqa: ANN001, ANN201
        self.release.wait()
        return "rows"

    def command(self, sql):  # noqa: ANN001, ANN201
        return "done"

    server_version = "26.5"


def test_a_call_that_never_answers_is_reported_once_with_what_it_was():
    engine = StuckEngine()
    client = TimedClient(engine)
    overdue = []
    deadline = Deadline(0.3, lambda seconds, what: overdue.append((seconds, what)), interval=0.05).start()
    caller = threading.Thread(target=client.query, args=("SELECT alert_id FROM raw_alerts FINAL WHERE …",))
    caller.start()
    time.sleep(1.0)
    assert len(overdue) == 1
    seconds, what = overdue[0]
    assert seconds > 0.3 and what.startswith("query: SELECT alert_id FROM raw_alerts FINAL")
    engine.release.set()
    caller.join(2)
    deadline.stop()
    assert oldest_call() is None  # finished calls are forgotten


def test_quick_calls_pass_and_attributes_are_the_clients_own():
    client = TimedClient(StuckEngine())
    overdue = []
    deadline = Deadline(0.2, lambda *a: overdue.append(a), interval=0.05).start()
    for _ in range(20):
        assert client.command("SELECT 1") == "done"
    time.sleep(0.4)
    deadline.stop()
    assert not overdue and client.server_version == "26.5"
