"""The real firmware built for the host, on a pseudo-terminal: protocol, bit-exactness, robustness."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import zlib

import numpy as np
import pytest

from mcu_helpers import ROOT, check_bit_exact, default_model, random_table
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.codec import FrameParser, crc16, encode_frame, pack_struct
from tinyvlm_ros.mcu.emulate import Emulator, build
from tinyvlm_ros.mcu.random_model import DEFAULT_MODEL_PATH
from tinyvlm_ros.mcu.link import McuLink, McuStatusError, ram_row


@pytest.fixture(scope="module", autouse=True)
def firmware_built():
    build("host")


@pytest.fixture
def emu():
    with Emulator("host") as e:
        yield e


@pytest.fixture
def link(emu):
    with McuLink(emu.url, timeout=2.0) as lk:
        yield lk


def test_kernel_paths_agree():
    proc = subprocess.run(["make", "-C", str(ROOT / "firmware"), "kernel-test"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "0 failures" in proc.stdout


def test_hello_info(link):
    info = link.info
    blob = DEFAULT_MODEL_PATH.read_bytes()
    assert info["proto_version"] == pc.PROTOCOL_VERSION
    assert info["port"] == pc.Port.HOST
    assert info["model_ok"] == 1
    assert info["model_hash"] == zlib.crc32(blob)
    assert (info["input_w"], info["input_h"], info["input_c"]) == (96, 96, 3)
    assert (info["grid_w"], info["grid_h"], info["embed_dim"]) == (12, 12, 128)
    assert info["table_capacity_rows"] >= 256 and info["table_rows"] == 0
    assert info["boot_id"] != 0
    assert link.ping(b"\x00\xa5\x5a hello") == b"\x00\xa5\x5a hello"


def test_bit_exact_100_frames_dsp(link):
    rng = np.random.default_rng(100)
    table = random_table(rng, rows=24, dims=64)
    info = link.load_table(table)
    assert (info["table_rows"], info["table_dims"]) == (24, 64)
    assert info["table_hash"] == zlib.crc32(table)
    rows = [0, 3, 5, 7, 11, 13, 17, 23]
    assert check_bit_exact(link, default_model(), table, rng, 100, rows, read_embed_every=4) == 100


def test_bit_exact_plain_kernels_and_full_dims():
    rng = np.random.default_rng(7)
    with Emulator("host", kernel="plain") as e, McuLink(e.url) as link:
        assert link.info["kernel_path"] == 0
        table = random_table(rng, rows=40, dims=128)
        link.load_table(table)
        assert check_bit_exact(link, default_model(), table, rng, 20, list(range(0, 40, 5))) == 20


def test_command_errors(link):
    rng = np.random.default_rng(1)
    with pytest.raises(McuStatusError, match="BAD_STATE"):
        link.infer(np.zeros((96, 96, 3), np.uint8))  # no table yet
    link.load_table(random_table(rng, rows=4, dims=32))
    with pytest.raises(McuStatusError, match="BAD_ARG"):
        link.set_query([ram_row(4)])
    with pytest.raises(McuStatusError, match="BAD_ARG"):
        link.set_query([0])  # no flash vocabulary
    with pytest.raises(McuStatusError, match="BAD_OPCODE"):
        link.request(0x7E)
    with pytest.raises(McuStatusError, match="BAD_LENGTH"):
        link.request(pc.Op.INFER, pack_struct("chunk", offset=0, total=5) + b"12345")
    with pytest.raises(McuStatusError, match="BAD_OFFSET"):
        link.request(pc.Op.LOAD_TABLE, pack_struct("chunk", offset=8, total=100) + b"x")
    bad = bytearray(random_table(rng, rows=4, dims=32))
    bad[-1] ^= 0x40
    with pytest.raises(McuStatusError, match="BAD_TABLE"):
        link.load_table(bytes(bad))
    from tinyvlm_ros.mcu.blob import table_from_embeddings

    with pytest.raises(McuStatusError, match="BAD_TABLE"):  # rows for another model's embedding space
        link.load_table(table_from_embeddings(rng.normal(size=(4, 64)), 32, model_id=0x1234))
    link.load_table(table_from_embeddings(rng.normal(size=(4, 64)), 32, model_id=link.info["model_id"]))
    with pytest.raises(McuStatusError, match="TOO_LARGE"):
        link.set_query([ram_row(i) for i in [0, 1, 2, 3] * 4])
        link.load_table(random_table(rng, rows=16, dims=32))
        link.set_query([ram_row(i) for i in range(16)])
        link.infer(np.zeros((96, 96, 3), np.uint8), want_scores=True)  # 16 rows of scores exceed a frame
    with pytest.raises(ValueError):
        link.infer(np.zeros((10, 10, 3), np.uint8))


def test_repeated_seq_gets_cached_reply(link):
    rng = np.random.default_rng(2)
    link.load_table(random_table(rng, rows=4, dims=32))
    link.set_query([ram_row(0), ram_row(1)])
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8).tobytes()
    frames = []
    seq = 4000
    for off in range(0, len(img), pc.MAX_CHUNK_DATA):
        frames.append(encode_frame(pc.Op.INFER, seq, pack_struct("chunk", offset=off, total=len(img))
                                   + img[off:off + pc.MAX_CHUNK_DATA]))
        seq += 1
    ser = link._ser
    parser = FrameParser()

    def reply() -> bytes:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for f in parser.feed(ser.read(max(1, ser.in_waiting))):
                return f.payload
        raise TimeoutError

    for f in frames:
        ser.write(f)
        first = reply()
    ser.write(frames[-1])  # the host's retry after a lost reply: must not run the frame again
    assert reply() == first
    assert link.device_stats()["dup_requests"] == 1
    assert link.device_stats()["frames"] == 1


def _storm(rng: np.random.Generator, n: int) -> bytes:
    """n random, truncated, corrupted and oversized frames and garbage."""
    out = bytearray()
    for i in range(n):
        kind = i % 5
        payload = rng.bytes(int(rng.integers(0, 40)))
        op = int(rng.choice([pc.Op.PING, pc.Op.HELLO, pc.Op.SET_QUERY, pc.Op.STATS, pc.Op.READ_EMBED, 0x55]))
        raw = bytearray(encode_frame(op, i & 0xFFFF, payload))
        if kind == 0:
            out += rng.bytes(int(rng.integers(1, 30)))
        elif kind == 1:
            out += raw[:int(rng.integers(1, len(raw)))]
        elif kind == 2:
            j = int(rng.integers(0, len(raw)))
            raw[j] ^= int(rng.integers(1, 256))
            out += raw
        elif kind == 3:
            body = bytes((pc.PROTOCOL_VERSION, op)) + int(i & 0xFFFF).to_bytes(2, "little") + b"\0\0" + \
                int(rng.integers(pc.MAX_PAYLOAD + 1, 0x10000)).to_bytes(2, "little")
            out += bytes((pc.SYNC0, pc.SYNC1)) + body + crc16(body).to_bytes(2, "little") + rng.bytes(8)
        else:
            out += raw  # valid frames mixed in: the device must answer them
    return bytes(out)


def test_1e5_bad_frames_no_hang_no_crash(emu, link):
    rng = np.random.default_rng(3)
    link.load_table(random_table(rng, rows=4, dims=32))
    ser = link._ser
    replies = bytearray()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            replies.extend(ser.read(max(1, ser.in_waiting)))

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    data = _storm(rng, 100_000)
    for i in range(0, len(data), 65536):
        ser.write(data[i:i + 65536])
    ser.flush()
    time.sleep(0.5)  # beyond the firmware's receive idle timeout: a cut-off frame is dropped
    stop.set()
    t.join(timeout=5)
    assert emu.running, "firmware died under garbage"
    answered = [f for f in FrameParser().feed(bytes(replies)) if f.error is None]
    assert len(answered) > 10_000  # the valid frames among the garbage were answered
    link._parser.reset()
    assert link.ping(b"still here") == b"still here"
    s = link.device_stats()
    assert s["crc_errors"] > 1000 and s["resyncs"] > 1000
    assert link.info["table_rows"] == 4 or link.hello()["table_rows"] == 4


def test_kill_mid_frame_then_reboot_recovery(tmp_path):
    tty = str(tmp_path / "ttyTVLM")
    rng = np.random.default_rng(4)
    table = random_table(rng, rows=8, dims=64)
    e = Emulator("host", link_path=tty)
    e.start()
    try:
        link = McuLink(tty, timeout=0.5, retries=2, reconnects=2, reconnect_delay=0.1).open()
        link.load_table(table)
        link.set_query([ram_row(1), ram_row(2), ram_row(3)], threshold=0.1)
        img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        first = link.infer(img, want_scores=True)
        boot0 = link.boot_id
        # half a frame, then the device dies
        head = pack_struct("chunk", offset=0, total=img.size)
        frame = encode_frame(pc.Op.INFER, 1, head + img.tobytes()[:4000])
        link._ser.write(frame[:2000])
        e.kill()
        t0 = time.monotonic()
        with pytest.raises(ConnectionError):
            link.infer(img)
        assert time.monotonic() - t0 < 10, "the link must give up in bounded time"
        e.start()  # the device comes back on the same path with a new boot id
        again = link.infer(img, want_scores=True)
        assert link.boot_id != boot0 and link.reboots == 1
        np.testing.assert_array_equal(again.scores, first.scores)  # table and query were reloaded
        assert link.info["table_hash"] == zlib.crc32(table)
        link.close()
    finally:
        e.stop()
        if os.path.lexists(tty):
            os.unlink(tty)


def test_reset_gives_new_boot_and_clears_table(link):
    rng = np.random.default_rng(5)
    link.load_table(random_table(rng, rows=4, dims=32))
    boot = link.boot_id
    info = link.reset()
    assert info["boot_id"] != boot and info["table_rows"] == 0
    with pytest.raises(McuStatusError, match="BAD_STATE"):
        link.infer(np.zeros((96, 96, 3), np.uint8))
