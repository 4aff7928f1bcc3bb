"""The flash vocabulary on the real host firmware.

Built in, or written to a flash slot that survives a restart; looked up by phrase hash; scored bit-exact
next to RAM rows; the engine uploads only the rows the device lacks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

from mcu_helpers import check_bit_exact, default_model, random_table
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.backend import HASH_TEXT_ID, McuEngine, hash_text_embed
from tinyvlm_ros.mcu.blob import table_blob_size, unpack_table
from tinyvlm_ros.mcu.codec import pack_struct
from tinyvlm_ros.mcu.emulate import Emulator, build
from tinyvlm_ros.mcu.link import McuLink, McuStatusError, ram_row
from tinyvlm_ros.mcu.vocab import build_vocab, phrase_hash
from tinyvlm_ros.testing.scenes import make_scene

PHRASES = ["red block", "blue ball", "green triangle", "yellow block", "purple ball", "orange triangle"]


def vocab_blob(phrases=PHRASES, dims=32, model_id=None) -> bytes:
    mid = default_model().model_id if model_id is None else model_id
    return build_vocab(phrases, hash_text_embed, dims, mid, HASH_TEXT_ID)


@pytest.fixture(scope="module", autouse=True)
def firmware_built():
    build("host")


def test_written_vocabulary_survives_a_restart_and_answers_without_load_table(tmp_path):
    flash = tmp_path / "flash.bin"
    blob = vocab_blob()
    rng = np.random.default_rng(40)
    with Emulator("host", flash=flash) as e, McuLink(e.url) as link:
        assert link.info["vocab_slot_bytes"] >= len(blob) and link.info["vocab_rows"] == 0
        info = link.vocab_write(blob)
        assert (info["vocab_source"], info["vocab_rows"], info["vocab_dims"]) == (pc.VocabSource.FLASH, 6, 32)
        assert info["vocab_hash"] == zlib.crc32(blob) and info["vocab_text_id"] == HASH_TEXT_ID
    with Emulator("host", flash=flash) as e, McuLink(e.url) as link:   # a power cycle
        assert link.info["vocab_source"] == pc.VocabSource.FLASH
        assert link.info["vocab_hash"] == zlib.crc32(blob) and link.info["table_rows"] == 0
        assert link.vocab_list() == (32, [phrase_hash(p) for p in PHRASES])
        ids = link.vocab_lookup([phrase_hash(p) for p in ("Blue  Ball", "pink cube", "red block")])
        assert ids == [1, pc.ROW_NONE, 0]
        # no LOAD_TABLE anywhere in this boot: flash rows alone, bit-exact with the reference
        assert check_bit_exact(link, default_model(), None, rng, 6, [], vocab_blob=blob,
                               vocab_rows=[0, 2, 5]) == 6
        assert link.ops["LOAD_TABLE"] == 0
        # RAM rows at another prefix next to flash rows: each row scored over its own table's dims
        table = random_table(rng, rows=5, dims=64)
        link.load_table(table)
        assert check_bit_exact(link, default_model(), table, rng, 6, [4, 1], vocab_blob=blob,
                               vocab_rows=[3]) == 6
        # RESET (a soft reboot) forgets RAM rows, keeps flash rows
        info = link.reset()
        assert info["table_rows"] == 0 and info["vocab_rows"] == 6
        link.set_query([0, 1])
        with pytest.raises(McuStatusError, match="BAD_ARG"):
            link.set_query([ram_row(0)])


def test_builtin_vocabulary_and_written_slot_precedence(tmp_path):
    builtin = tmp_path / "builtin.tvtb"
    builtin.write_bytes(vocab_blob(PHRASES[:3], dims=16))
    build("host", vocab=builtin)
    flash = tmp_path / "flash.bin"
    rng = np.random.default_rng(41)
    with Emulator("host", vocab=builtin, flash=flash) as e, McuLink(e.url) as link:
        # a fresh device answers from the image's vocabulary, with nothing sent first
        assert (link.info["vocab_source"], link.info["vocab_rows"]) == (pc.VocabSource.BUILTIN, 3)
        assert check_bit_exact(link, default_model(), None, rng, 3, [], vocab_blob=builtin.read_bytes(),
                               vocab_rows=[2, 0]) == 3
        written = vocab_blob(dims=32)
        assert link.vocab_write(written)["vocab_source"] == pc.VocabSource.FLASH  # the written slot wins
        info = link.vocab_erase()
        assert (info["vocab_source"], info["vocab_rows"], info["vocab_dims"]) == \
            (pc.VocabSource.BUILTIN, 3, 16)


def test_vocabulary_writes_that_must_not_stick(tmp_path):
    flash = tmp_path / "flash.bin"
    rng = np.random.default_rng(42)
    big = build_vocab([f"thing {i}" for i in range(60)], hash_text_embed, 128, default_model().model_id,
                      HASH_TEXT_ID)
    assert len(big) > 2 * pc.MAX_CHUNK_DATA  # three chunks
    with Emulator("host", flash=flash) as e, McuLink(e.url) as link:
        with pytest.raises(McuStatusError, match="BAD_TABLE"):  # rows embedded for another model
            link.vocab_write(vocab_blob(model_id=0x1234))
        bad = bytearray(big)
        bad[-1] ^= 1
        with pytest.raises(McuStatusError, match="BAD_TABLE"):  # body CRC
            link.vocab_write(bytes(bad))
        assert link.hello()["vocab_rows"] == 0
        # a write cut short after its first chunk (the header is programmed last): nothing valid remains
        first = pack_struct("chunk", offset=0, total=len(big)) + big[:pc.MAX_CHUNK_DATA]
        link.request(pc.Op.VOCAB_WRITE, first)
    with Emulator("host", flash=flash) as e, McuLink(e.url) as link:
        assert link.info["vocab_source"] == pc.VocabSource.NONE and link.info["vocab_rows"] == 0
        link.vocab_write(big)
        assert link.info["vocab_rows"] == 60 and len(big) == table_blob_size(60, 128)
        assert unpack_table(big).phrase_hash[59] == phrase_hash("thing 59")
        assert check_bit_exact(link, default_model(), None, rng, 2, [], vocab_blob=big,
                               vocab_rows=[59, 7]) == 2
    with Emulator("host") as e, McuLink(e.url) as link:  # a board without writable flash
        assert link.info["vocab_slot_bytes"] == 0
        with pytest.raises(McuStatusError, match="NOT_SUPPORTED"):
            link.vocab_write(vocab_blob())


def test_engine_uploads_only_the_rows_the_device_lacks(tmp_path):
    flash = tmp_path / "flash.bin"
    scene = make_scene(seed=5, width=160, height=120)
    with Emulator("host", flash=flash, link_path=str(tmp_path / "tty")) as e:
        with McuLink(e.url) as link:
            link.vocab_write(vocab_blob(dims=32))
        link = McuLink(e.url, timeout=1.0, retries=2, reconnects=3, reconnect_delay=0.1)
        eng = McuEngine(link, hash_text_embed, dims=32, text_id=HASH_TEXT_ID, score_threshold=-1.0,
                        allow_random_model=True).open()
        embedded = []

        def counting_embed(phrases):
            embedded.extend(phrases)
            return hash_text_embed(phrases)

        eng.text_embed = counting_embed
        res = eng.detect(scene.image, "pick the red block and the pink cube and the blue ball")
        assert res.targets == ["red block", "pink cube", "blue ball"] and res.work["mcu_frames"] == 1
        # one lookup for the three phrases; one RAM row uploaded, for the phrase the vocabulary lacks
        assert embedded == ["pink cube"]
        assert link.ops["VOCAB_LOOKUP"] == 1 and link.ops["LOAD_TABLE"] == 1
        assert link.info["table_rows"] == 1
        sent = link.stats["tx_bytes"]
        eng.detect(scene.image, "the blue ball and the pink cube")  # all known now: no lookup, no upload
        assert link.ops["VOCAB_LOOKUP"] == 1 and link.ops["LOAD_TABLE"] == 1
        frame_bytes = 96 * 96 * 3
        assert link.stats["tx_bytes"] - sent < frame_bytes + 200  # the frame, a query and the frame headers
        # unplug and replug: the RAM row comes back with the link's restore, the flash rows need nothing
        e.kill()
        e.start()
        res = eng.detect(scene.image, "the blue ball and the pink cube")
        assert res.targets == ["blue ball", "pink cube"] and link.reboots == 1
        assert link.ops["LOAD_TABLE"] == 2 and link.ops["VOCAB_WRITE"] == 0 and embedded == ["pink cube"]
        eng.close()
    # another embedder (text id) must not use these rows: everything is uploaded
    with Emulator("host", flash=flash) as e:
        eng = McuEngine(e.url, hash_text_embed, dims=32, text_id=HASH_TEXT_ID ^ 1, score_threshold=-1.0,
                        allow_random_model=True).open()
        eng.detect(scene.image, "the red block")
        assert eng.link.ops["VOCAB_LOOKUP"] == 0 and eng.link.info["table_rows"] == 1
        assert "not used" in eng.describe()["vocab"]
        eng.close()


def test_random_model_refused_unless_allowed():
    with Emulator("host") as e:
        eng = McuEngine(e.url, hash_text_embed, dims=32)
        with pytest.raises(ValueError, match="random weights.*tinyvlm mcu distill"):
            eng.open()
        eng.close()
        eng = McuEngine(e.url, hash_text_embed, dims=32, allow_random_model=True).open()
        assert eng.describe()["model"].startswith("RANDOM")
        eng.close()


def test_vocab_cli_builds_with_a_model_dir_and_the_node_engine_uses_it(tmp_path):
    # `tinyvlm mcu vocab build` -> `vocab write` -> the engine a node makes from mcu_model_dir finds the rows
    from mcu_helpers import make_model_dir
    from tinyvlm_ros import backends
    from tinyvlm_ros.testing.models import make_known_answer_set

    teacher = make_known_answer_set(tmp_path / "teacher")
    model_dir = make_model_dir(tmp_path / "trained", teacher)
    phrases = tmp_path / "vocab.txt"
    phrases.write_text("# table-top objects\nred block\nBlue Ball\nred block\ngreen triangle  # a comment\n")
    blob = tmp_path / "vocab.tvtb"

    def cli(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "mcu", *args], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "3 phrases x 32 dims" in cli("vocab", "build", "--phrases", str(phrases), "--mcu-model-dir",
                                        str(model_dir), "--out", str(blob))
    with Emulator("host", model=str(model_dir / "model.tvm"), flash=tmp_path / "flash.bin") as e:
        assert "3 rows x 32 dims" in cli("vocab", "write", "--port", e.url, "--table", str(blob))
        listed = json.loads(cli("vocab", "list", "--port", e.url))
        assert listed["source"] == "FLASH" and listed["phrase_hashes"][1] == f"{phrase_hash('blue ball'):08x}"
        cfg = {"backend": "mcu", "serial_port": e.url, "mcu_model_dir": str(model_dir),
               "model_dir": str(teacher), "mcu_timeout_s": 2.0, "max_detections": 8}
        eng = backends.make_engine(cfg)
        try:
            res = eng.detect(np.zeros((96, 96, 3), np.uint8), "the blue ball and the pink cube")
            assert res.targets == ["blue ball", "pink cube"]
            assert eng.link.ops["VOCAB_LOOKUP"] == 1 and eng.link.info["table_rows"] == 1  # only "pink cube"
            assert eng.describe()["vocab"] == "3 rows, used"
        finally:
            eng.close()
    with Emulator("host") as e:  # the device runs the random built-in model, not the trained one: refused
        cfg = {"backend": "mcu", "serial_port": e.url, "mcu_model_dir": str(model_dir),
               "model_dir": str(teacher)}
        with pytest.raises(ValueError, match="load its model.tvm"):
            backends.make_engine(cfg)


def test_a_vocabulary_changed_across_a_reboot_is_looked_up_again(tmp_path):
    flash = tmp_path / "flash.bin"
    tty = str(tmp_path / "tty")
    scene = make_scene(seed=6, width=160, height=120)
    e = Emulator("host", flash=flash, link_path=tty)
    e.start()
    try:
        with McuLink(e.url) as link:
            link.vocab_write(vocab_blob(["red block", "blue ball"]))
        link = McuLink(tty, timeout=1.0, retries=2, reconnects=3, reconnect_delay=0.1)
        eng = McuEngine(link, hash_text_embed, dims=32, text_id=HASH_TEXT_ID, score_threshold=-1.0,
                        allow_random_model=True).open()
        first = eng.detect(scene.image, "pick the red block and the teal cone")  # flash row 0 + a RAM row
        assert first.targets == ["red block", "teal cone"] and link._query[4:6] == bytes(2)
        e.kill()
        # the device comes back with another vocabulary: "red block" is now row 2
        with Emulator("host", flash=flash) as other, McuLink(other.url) as lk:
            lk.vocab_write(vocab_blob(["green triangle", "blue ball", "red block"]))
        e.start()
        with pytest.raises(McuStatusError, match="BAD_STATE"):  # never scored with rows that moved
            eng.detect(scene.image, "pick the red block and the teal cone")
        res = eng.detect(scene.image, "pick the red block and the teal cone")
        assert res.targets == ["red block", "teal cone"]
        # looked up again; the query sent names the new row (bytes 4-5: its first row id)
        assert link.ops["VOCAB_LOOKUP"] == 2 and link._query[4:6] == (2).to_bytes(2, "little")
        eng.close()
    finally:
        e.stop()
