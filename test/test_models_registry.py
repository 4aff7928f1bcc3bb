"""Registry names, aliases, configs and cache paths."""

import pytest

from tinyvlm_ros.models import registry


def test_registry_has_the_four_checkpoints():
    assert set(registry.MODELS) == {"tinyclip-8m-16", "tinyclip-39m-16", "tinyclip-61m-32", "mobilesam"}
    for spec in registry.MODELS.values():
        assert spec.url.startswith("https://github.com/")
        assert spec.url.endswith(spec.filename)
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.approx_mb > 0


@pytest.mark.parametrize("alias", ["61m-32", "tinyclip-61m-32", "TinyCLIP-ViT-61M-32-Text-29M",
                                   "TinyCLIP-ViT-61M-32-Text-29M-LAION400M", " 61M-32 "])
def test_aliases_resolve(alias):
    assert registry.resolve(alias).name == "tinyclip-61m-32"


def test_unknown_name_is_a_value_error_listing_known_names():
    with pytest.raises(ValueError, match="tinyclip-61m-32"):
        registry.resolve("clip-giant")


def test_resolve_many_defaults_to_the_default_set_and_drops_repeats():
    # the default set's members, as the node's default model_dir names them
    assert [s.name for s in registry.resolve_many(None)] == registry.DEFAULT_SET_NAME.split("+")
    assert registry.set_name(registry.resolve_many(None)[1]) == registry.DEFAULT_SET_NAME
    assert len(registry.resolve_many(["all"])) == len(registry.MODELS)
    assert [s.name for s in registry.resolve_many(["61m-32", "tinyclip-61m-32", "mobilesam"])] == \
        ["tinyclip-61m-32", "mobilesam"]


def test_clip_configs_match_parameter_counts_in_names():
    # The names carry parameter counts; a transcription slip would break them.
    for name, expect_vis, expect_txt in [("8m-16", 8, 3), ("39m-16", 39, 19), ("61m-32", 61, 29)]:
        cfg = registry.clip_config(name)
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        vis = 12 * v["layers"] * v["width"] ** 2 + 3 * v["patch_size"] ** 2 * v["width"] \
            + v["width"] * cfg["embed_dim"]
        txt = 12 * t["layers"] * t["width"] ** 2 + t["width"] * cfg["embed_dim"]
        assert abs(vis / 1e6 - expect_vis) / expect_vis < 0.06, (name, vis)
        # Small text towers round up in the names (2.5 M is "Text-3M").
        assert abs(txt / 1e6 - expect_txt) < max(0.1 * expect_txt, 0.6), (name, txt)
    with pytest.raises(ValueError):
        registry.clip_config("mobilesam")
    # A copy: callers may edit it.
    registry.clip_config("61m-32")["embed_dim"] = 1
    assert registry.clip_config("61m-32")["embed_dim"] == 512


def test_cache_dir_override_order(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "env"))
    assert registry.cache_dir() == tmp_path / "env"
    assert registry.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(registry.CACHE_ENV)
    assert registry.cache_dir().name == "tinyvlm_ros"
    spec = registry.resolve("mobilesam")
    assert registry.checkpoint_path(spec, tmp_path) == tmp_path / "checkpoints" / "mobile_sam.pt"


def test_make_test_without_random_writes_the_known_answer_set(tmp_path, capsys):
    from tinyvlm_ros import cli

    assert cli.main(["models", "make-test", str(tmp_path / "ka")]) == 0
    assert (tmp_path / "ka" / "manifest.json").is_file()
    assert "known-answer" in capsys.readouterr().out
