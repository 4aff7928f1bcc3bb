"""Device-camera mode on the real host firmware (the port's generated scene), and the clock translation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mcu_helpers import default_model, random_table
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu import reference as ref
from tinyvlm_ros.mcu.backend import HASH_TEXT_ID, McuEngine, hash_text_embed
from tinyvlm_ros.mcu.blob import unpack_table
from tinyvlm_ros.mcu.clock import ClockSample, ClockSync
from tinyvlm_ros.mcu.emulate import Emulator, build
from tinyvlm_ros.mcu.link import McuLink, McuStatusError, ram_row


@pytest.fixture(scope="module")
def link():
    build("host")
    with Emulator("host") as e, McuLink(e.url) as lk:
        yield lk


def test_capture_scores_the_devices_own_frame(link):
    assert link.info["camera"] == pc.Camera.GENERATED
    rng = np.random.default_rng(50)
    with pytest.raises(McuStatusError, match="BAD_STATE"):  # no query yet
        link.capture()
    blob = random_table(rng, rows=4, dims=64)
    link.load_table(blob)
    ids = [ram_row(0), ram_row(3)]
    link.set_query(ids, threshold=0.0, max_boxes=8)
    before = link.clock()
    res = link.capture(want_scores=True, thumb_div=4)
    after = link.clock()
    assert before <= res.capture_us <= after
    # the scores are the reference's for the embeddings the device computed from its frame
    emb = link.read_embed()
    np.testing.assert_array_equal(res.scores, ref.score_row_ids(emb, None, unpack_table(blob), ids))
    boxes = ref.group_boxes(res.scores, 12, 12, ids, 0, 8)
    assert [(b["row"], b["score_q15"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in res.boxes] == \
        [(b.row, b.score_q15, b.x0, b.y0, b.x1, b.y1) for b in boxes]
    # the thumbnail shows the scene: a grey table with a red object in its top band that moves
    th = res.thumbnail
    assert th.shape == (24, 24, 3)
    red = (th[..., 0] > 180) & (th[..., 1] < 80) & (th[..., 2] < 80)
    assert red[:8].sum() >= 4 and red[8:].sum() == 0
    grey = np.abs(th[..., 0].astype(int) - th[..., 2]) < 12
    assert grey.mean() > 0.6
    nxt = link.capture(thumb_div=4)
    assert nxt.capture_us > res.capture_us and nxt.frame_no == res.frame_no + 1
    red2 = (nxt.thumbnail[..., 0] > 180) & (nxt.thumbnail[..., 1] < 80)
    assert not np.array_equal(red, red2)  # the block moved
    with pytest.raises(McuStatusError, match="TOO_LARGE"):
        link.capture(thumb_div=1)  # a full frame does not fit one reply


def test_engine_capture_stamps_in_host_time(link):
    eng = McuEngine(link, hash_text_embed, dims=32, text_id=HASH_TEXT_ID, score_threshold=-1.0,
                    allow_random_model=True)
    t0 = time.time_ns()
    res, cap = eng.capture("the red block", thumb_div=3)
    t1 = time.time_ns()
    assert res.targets == ["red block"] and len(res.detections) == 1
    assert (cap.width, cap.height) == (96, 96) and cap.thumbnail.shape == (32, 32, 3)
    # threshold -1: every cell is hot, one box over the whole device frame
    assert res.detections[0].box_xyxy == (0.0, 0.0, 96.0, 96.0)
    # the frame was taken between the call and its return; the bound is half a round trip (well under 50 ms)
    assert t0 - cap.error_ns <= cap.stamp_ns <= t1 + cap.error_ns
    assert 0 < cap.error_ns < 50_000_000
    res2, cap2 = eng.capture("the red block")
    assert cap2.stamp_ns > cap.stamp_ns


def test_clock_sync_bound_holds_with_skew_and_asymmetric_delays():
    # a simulated device clock: 1.7 s offset, 80 ppm fast; replies delayed more than requests
    rng = np.random.default_rng(3)
    now = [10_000_000_000]

    def host():
        return now[0]

    def device_us():
        now[0] += int(rng.integers(50_000, 2_000_000))   # request travels 0.05-2 ms
        d = (now[0] - 1_700_000_000) * (1 + 80e-6) / 1000
        now[0] += int(rng.integers(100_000, 6_000_000))  # the reply takes longer
        return int(d)

    def truth(d_us):
        return d_us * 1000 / (1 + 80e-6) + 1_700_000_000

    sync = ClockSync(host, burst=6, min_span_s=1.0)
    sync.sync(device_us, boot_id=1)
    d = device_us()
    host_ns, bound = sync.to_host(d)
    assert abs(host_ns - truth(d)) <= bound
    now[0] += 3_000_000_000
    sync.sync(device_us, boot_id=1)
    for extra in (0, 500_000_000, 4_000_000_000):
        now[0] += extra
        d = device_us()
        host_ns, bound = sync.to_host(d)
        assert abs(host_ns - truth(d)) <= bound, (extra, host_ns - truth(d), bound)
    assert sync.stale(boot_id=2)  # a reboot restarts the device clock
    sync.sync(device_us, boot_id=2)
    assert len(sync.samples) == 1
    with pytest.raises(ValueError):
        ClockSync().to_host(5)
    one = ClockSync()
    one.add(ClockSample(0, 100, 10))
    assert one.to_host(1_000_000) == (1_000_000_100, 10 + 200_000)  # 1 s at the assumed 200 ppm


def test_capture_refused_without_camera_model_or_with_bad_args(link):
    with pytest.raises(McuStatusError, match="BAD_LENGTH"):
        link.request(pc.Op.CAPTURE, b"\x00")
    link.load_table(random_table(np.random.default_rng(1), rows=2, dims=32))
    link.set_query([ram_row(0)])
    with pytest.raises(McuStatusError, match="BAD_ARG"):
        link.request(pc.Op.CAPTURE, bytes(4), int(pc.Flag.WANT_THUMB))  # thumbnail divisor 0
    assert default_model().in_w == link.info["input_w"]
