"""The real firmware under QEMU (Cortex-M4 / M7 / M55): same bit-exact checks as on the host, fewer frames."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from mcu_helpers import check_bit_exact, default_model, random_table
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu import reference as ref
from tinyvlm_ros.mcu.backend import HASH_TEXT_ID, hash_text_embed
from tinyvlm_ros.mcu.blob import pack_model, unpack_table
from tinyvlm_ros.mcu.codec import encode_frame
from tinyvlm_ros.mcu.emulate import Emulator, build, qemu_available
from tinyvlm_ros.mcu.random_model import random_model
from tinyvlm_ros.mcu.link import McuLink, ram_row
from tinyvlm_ros.mcu.vocab import build_vocab, phrase_hash

pytestmark = pytest.mark.skipif(not qemu_available(), reason="qemu-system-arm not installed "
                                "(tools/ros_env/apt.sh installs it)")


@pytest.fixture(scope="module")
def m4():
    build("qemu-m4")
    with Emulator("qemu-m4", icount=6) as e, McuLink(e.url, timeout=15.0) as link:
        yield link


def test_m4_hello(m4):
    info = m4.info
    assert info["port"] == pc.Port.QEMU_M4 and info["kernel_path"] == 1
    assert info["model_ok"] == 1 and info["ticks_per_kinstr"] == 1600
    assert info["flash_bytes"] == 1 << 20 and info["ram_bytes"] == 320 * 1024


def test_m4_bit_exact(m4):
    rng = np.random.default_rng(11)
    table = random_table(rng, rows=32, dims=64)
    m4.load_table(table)
    assert check_bit_exact(m4, default_model(), table, rng, 12, [0, 5, 9, 31], read_embed_every=3) == 12


def test_m4_work_counter_within_budget(m4):
    rng = np.random.default_rng(12)
    m4.load_table(random_table(rng, rows=8, dims=64))
    m4.set_query([ram_row(i) for i in range(4)])
    res = m4.infer(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    instructions = res.ticks * 1000 / m4.info["ticks_per_kinstr"]
    assert 1e6 < instructions < 20e6


def test_m4_survives_garbage(m4):
    rng = np.random.default_rng(13)
    junk = bytearray(rng.bytes(3000))
    for i in range(200):
        f = bytearray(encode_frame(pc.Op.PING, i, rng.bytes(8)))
        f[int(rng.integers(0, len(f)))] ^= 0x10
        junk += f
    m4._ser.write(bytes(junk))
    time.sleep(1.5)  # the UART takes a while; then the receive idle timeout drops any half frame
    m4._ser.reset_input_buffer()
    m4._parser.reset()
    assert m4.ping(b"alive") == b"alive"


@pytest.mark.parametrize("target", ["qemu-m7", "qemu-m55"])
def test_other_cores_bit_exact(target):
    build(target)
    rng = np.random.default_rng(21)
    with Emulator(target) as e, McuLink(e.url, timeout=15.0) as link:
        assert link.info["model_ok"] == 1
        table = random_table(rng, rows=16, dims=32)
        link.load_table(table)
        assert check_bit_exact(link, default_model(), table, rng, 4, [1, 2, 3], read_embed_every=2) == 4


def test_model_slot_loads_a_model_without_rebuild(tmp_path):
    build("qemu-m4")
    model = random_model(seed=5, n_calib=2)
    path = tmp_path / "seed5.tvm"
    blob = pack_model(model)
    path.write_bytes(blob)
    rng = np.random.default_rng(22)
    with Emulator("qemu-m4", model=str(path)) as e, McuLink(e.url, timeout=15.0) as link:
        assert link.info["model_hash"] == zlib.crc32(blob)
        table = random_table(rng, rows=8, dims=64)
        link.load_table(table)
        assert check_bit_exact(link, model, table, rng, 3, [0, 7], read_embed_every=1) == 3


def test_m4_flash_vocabulary_survives_an_emulator_restart_and_camera(tmp_path):
    # QEMU's MPS2 has no persistent flash: the port keeps its flash slot in a host file (semihosting)
    build("qemu-m4")
    flash = tmp_path / "flash.bin"
    model = default_model()
    blob = build_vocab(["red block", "blue ball", "green triangle"], hash_text_embed, 32, model.model_id,
                       HASH_TEXT_ID)
    with Emulator("qemu-m4", flash=flash) as e, McuLink(e.url, timeout=15.0) as link:
        assert link.info["vocab_rows"] == 0 and link.info["vocab_slot_bytes"] == 256 * 1024
        assert link.vocab_write(blob)["vocab_source"] == pc.VocabSource.FLASH
    with Emulator("qemu-m4", flash=flash) as e, McuLink(e.url, timeout=15.0) as link:
        info = link.info
        assert (info["vocab_source"], info["vocab_rows"], info["vocab_hash"]) == \
            (pc.VocabSource.FLASH, 3, zlib.crc32(blob))
        assert link.vocab_lookup([phrase_hash("green triangle")]) == [2]
        rng = np.random.default_rng(23)
        assert check_bit_exact(link, model, None, rng, 1, [], vocab_blob=blob, vocab_rows=[2, 0]) == 1
        link.set_query([0, 1], threshold=0.0)
        before = link.clock()
        res = link.capture(want_scores=True, thumb_div=4)
        after = link.clock()
        assert before <= res.capture_us <= after and res.thumbnail.shape == (24, 24, 3)
        np.testing.assert_array_equal(
            res.scores, ref.score_row_ids(link.read_embed(), unpack_table(blob), None, [0, 1]))
        assert link.ops["LOAD_TABLE"] == 0
