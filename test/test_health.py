"""Status and diagnostics content (tinyvlm_ros.health) and thread-safe statistics (tinyvlm_ros.stats)."""

import threading

from tinyvlm_ros import health
from tinyvlm_ros.stats import Counters, Rate, Windows


def _report(**kw):
    base = dict(name="/arm/detect_node", state="active", backend="local")
    base.update(kw)
    return health.NodeReport(**base)


def test_unconfigured_with_a_reason_is_an_error_that_names_it():
    level, msg = health.summary(_report(state="unconfigured",
                                        last_error="no model set at /x (missing manifest)"))
    assert level == health.ERROR and msg == "configure failed: no model set at /x (missing manifest)"
    level, msg = health.summary(_report(state="unconfigured"))
    assert level == health.WARN and "configure" in msg
    level, msg = health.summary(_report(state="inactive"))
    assert level == health.WARN and "activate" in msg
    assert not _report(state="inactive").ready and _report().ready


def test_active_levels():
    assert health.summary(_report()) == (health.OK, "running")
    assert health.summary(_report(counters={"bad_inputs": 3}))[1] == "running; 3 bad inputs skipped"
    level, msg = health.summary(_report(degraded=True, degraded_reason="MCU does not answer"))
    assert level == health.WARN and msg == "degraded: MCU does not answer"
    level, msg = health.summary(_report(command="pick the pen", since_last_frame_s=9.0))
    assert level == health.WARN and "no image" in msg
    assert health.summary(_report(command="pick the pen", since_last_frame_s=1.0))[0] == health.OK


def test_values_list_every_counter_kind_and_stage():
    r = _report(models={"models": "known"}, command="pick the pen", command_id=7,
                counters={"frames_received": 9, "frames_processed": 4, "bad_input.image:step": 2,
                          "depth_refused.depth_stale": 1, "unrelated": 5},
                stages={"engine": (0.010, 0.020), "latency": (float("nan"), float("nan"))})
    v = health.values(r)
    assert v["model.models"] == "known" and v["command_id"] == "7" and v["state"] == "active"
    assert v["frames_received"] == "9" and v["frames_skipped_no_command"] == "0"
    assert v["bad_input.image:step"] == "2" and v["depth_refused.depth_stale"] == "1"
    assert "unrelated" not in v
    assert v["engine_p50_ms"] == "10.0" and v["engine_p95_ms"] == "20.0" and "latency_p50_ms" not in v
    assert all(isinstance(x, str) for x in v.values())


def test_statistics_survive_a_writer_and_a_reader_at_once():
    # the worker adds samples under new names while the diagnostics timer reads: no
    # "dictionary changed size during iteration", no lost samples
    windows, rate, counters = Windows(size=10_000), Rate(), Counters()
    errors = []

    def writer():
        try:
            for i in range(20_000):
                windows.add(f"stage.{i % 500}", i * 1e-6)
                rate.tick()
                counters.inc("frames")
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)

    def reader():
        try:
            for _ in range(300):
                windows.percentiles((50, 95))
                rate.hz()
                counters.snapshot()
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(windows.percentiles()) == 500
    assert sum(len(windows.get(f"stage.{i}")) for i in range(500)) == 20_000
    assert counters.get("frames") == 20_000
