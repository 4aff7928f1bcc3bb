"""Newest-only hand-off: bounded, counts drops, never blocks the producer."""

import threading
import time

from tinyvlm_ros.latest import LatestSlot
from tinyvlm_ros.stats import Counters, Rate, Window


def test_only_newest_survives_and_drops_are_counted():
    slot = LatestSlot()
    for i in range(100):
        slot.put(i)
    assert slot.take(0.1) == 99
    assert slot.dropped == 99 and slot.put_count == 100
    assert slot.take(0.01) is None


def test_slow_consumer_fast_producer():
    slot = LatestSlot()
    taken = []
    stop = threading.Event()

    def consumer():
        while not stop.is_set():
            item = slot.take(0.05)
            if item is not None:
                taken.append(item)
                time.sleep(0.02)  # slow "inference"

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(2000):
        slot.put(i)
        if i % 100 == 0:
            time.sleep(0.005)
    time.sleep(0.1)
    stop.set()
    t.join(2)
    assert taken[-1] == 1999                     # the newest frame is always processed
    assert taken == sorted(taken)                # never an older frame after a newer one
    assert len(taken) + slot.dropped == 2000     # every frame processed or counted


def test_close_wakes_waiter():
    slot = LatestSlot()
    out = []
    t = threading.Thread(target=lambda: out.append(slot.take(10)))
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(2)
    assert not t.is_alive() and out == [None]


def test_counters_log_once_per_kind():
    c = Counters()
    assert c.problem("encoding") is True
    assert c.problem("encoding") is False
    assert c.problem("step") is True
    assert c.get("bad_inputs") == 3 and c.get("bad_input.encoding") == 2


def test_window_and_rate():
    w = Window(size=3)
    for v in (5, 1, 2, 3):
        w.add(v)
    assert w.percentile(0) == 1 and w.percentile(100) == 3 and w.last == 3
    now = [0.0]
    r = Rate(horizon_s=10, clock=lambda: now[0])
    for _ in range(11):
        r.tick()
        now[0] += 0.5
    assert abs(r.hz() - 2.0) < 0.3
