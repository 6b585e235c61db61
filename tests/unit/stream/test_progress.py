import time

from stream.progress import Progress


def test_liveness_fails_when_a_batch_is_stuck_or_the_loop_stops_ticking():
    progress = Progress(stall_timeout=0.05, tick_timeout=0.05)
    assert progress.liveness()[0]
    progress.begin()
    time.sleep(0.08)
    progress.tick()
    ok, detail = progress.liveness()
    assert not ok and "in flight" in detail["problems"][0]
    progress.done({("aml.alerts", 0): 41})
    ok, detail = progress.liveness()
    assert ok and detail["batches"] == 1 and progress.positions[("aml.alerts", 0)] == 41
    time.sleep(0.08)
    ok, detail = progress.liveness()
    assert not ok and "not ticked" in detail["problems"][0]
