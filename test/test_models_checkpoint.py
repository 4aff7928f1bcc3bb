"""Checkpoint reading: every layout TinyCLIP's own loader takes, clear errors, the pickle opt-in.

The checkpoints are made here from the real architectures (TinyCLIP 8M-16 through
open_clip, MobileSAM at input 512) with random weights, saved in each upstream
key layout (facts from wkcn/TinyCLIP's ``factory.load_state_dict`` and
``CLIPBase.load_state_dict``).
"""

import argparse

import pytest

from export_extra import require_export_extra

torch, export = require_export_extra()

from tinyvlm_ros import cli  # noqa: E402
from tinyvlm_ros.models import checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def clip_pair():
    """(reference weights, a second model of the same variant to load checkpoints into)."""
    torch.manual_seed(5)
    model, _ = export.build_clip("8m-16")
    ref = {k: v.clone() for k, v in model.state_dict().items() if k != "attn_mask"}
    torch.manual_seed(99)  # another random init: only a checkpoint can make it equal to ref
    other, _ = export.build_clip("8m-16")
    return ref, other


@pytest.fixture(scope="module")
def clip_ref(clip_pair):
    return clip_pair[0]


def _tinyclip(state, image_ddp: bool, text_ddp: bool):
    """open_clip keys -> TinyCLIP's tower layout (_image_encoder / _text_encoder / _logit_scale)."""
    out = {}
    for k, v in state.items():
        if k.startswith("visual."):
            out[("_image_encoder.module." if image_ddp else "_image_encoder.") + k] = v
        elif k == "logit_scale":
            out[("_logit_scale.module." if image_ddp else "_logit_scale.") + k] = v
        else:
            out[("_text_encoder.module." if text_ddp else "_text_encoder.") + k] = v
    return out


def _timm_head(state):
    out = dict(state)
    out["visual.model.head.0.weight"] = out.pop("visual.ln_post.weight")
    out["visual.model.head.0.bias"] = out.pop("visual.ln_post.bias")
    out["visual.model.head.1.weight"] = out.pop("visual.proj").T.contiguous()
    return out


LAYOUTS = {
    "open_clip plain": lambda s: s,
    "open_clip training (state_dict, DDP module.)": lambda s: {
        "epoch": 3, "state_dict": {"module." + k: v for k, v in s.items()}},
    "TinyCLIP release (state_dict, _image_encoder.module.)": lambda s: {
        "epoch": 1, "state_dict": _tinyclip(s, True, True)},
    "TinyCLIP towers without .module": lambda s: _tinyclip(s, False, False),
    "TinyCLIP module._image_encoder.module.": lambda s: {
        "module." + k: v for k, v in _tinyclip(s, True, True).items()},
    "TinyCLIP timm-style head": lambda s: {"state_dict": _tinyclip(_timm_head(s), False, False)},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_upstream_layout_loads_to_the_same_weights(tmp_path, clip_pair, layout):
    ref, model = clip_pair
    path = tmp_path / "tinyclip.pt"
    torch.save(LAYOUTS[layout]({k: v.clone() for k, v in ref.items()}), path)
    with torch.no_grad():  # scramble, so every test proves its own load
        for p in model.parameters():
            p.normal_()
    # the steps build_clip takes (test_the_opt_in_conversion... goes through build_clip itself)
    state = checkpoint.clip_state_dict(checkpoint.load_tensors(path), path)
    checkpoint.strict_load(model, state, path, ("attn_mask",))
    loaded = model.state_dict()
    for k, v in ref.items():
        assert torch.equal(loaded[k], v), (layout, k)


def test_a_foreign_layout_names_the_missing_and_unexpected_keys(tmp_path, clip_ref):
    path = tmp_path / "other.pt"
    torch.save({"clip_model." + k: v for k, v in clip_ref.items()}, path)
    with pytest.raises(ValueError, match=r"other\.pt does not fit.*missing keys.*unexpected keys.*clip_mod"):
        export.build_clip("8m-16", path)


def test_another_variant_is_refused_with_the_shape_named(tmp_path, clip_ref):
    # the 39M-16 tower is 512 wide where 8M-16 is 256: its projection has another shape
    state = dict(clip_ref, **{"visual.proj": torch.zeros(512, 512)})
    path = tmp_path / "39m.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"39m\.pt does not fit.*size mismatch.*visual\.proj"):
        export.build_clip("8m-16", path)


def test_a_tinyclip_checkpoint_without_its_text_tower_is_refused(tmp_path, clip_ref):
    state = {k: v for k, v in _tinyclip(clip_ref, True, True).items() if not k.startswith("_text_encoder")}
    torch.save({"state_dict": state}, tmp_path / "half.pt")
    with pytest.raises(ValueError, match="no text tower"):
        export.build_clip("8m-16", tmp_path / "half.pt")


def test_a_sam_checkpoint_with_a_ddp_prefix_loads(tmp_path):
    torch.manual_seed(1)
    sam = export.build_sam(512)
    torch.save({"model": {"module." + k: v for k, v in sam.state_dict().items()}}, tmp_path / "sam.pt")
    torch.manual_seed(2)
    again = export.build_sam(512, tmp_path / "sam.pt")
    for key in ("image_encoder.patch_embed.seq.0.c.weight", "mask_decoder.iou_token.weight"):
        assert torch.equal(again.state_dict()[key], sam.state_dict()[key])


@pytest.fixture()
def training_checkpoint(tmp_path, clip_ref):
    # what TinyCLIP's train.py saves: the run's argparse Namespace next to the weights and optimizer
    path = tmp_path / "epoch_3_iter_100.pt"
    torch.save({"args": argparse.Namespace(model="TinyCLIP-ViT-8M-16-Text-3M", lr=1e-4), "epoch": 3,
                "iter_in_epoch": 100, "name": "run", "state_dict": _tinyclip(clip_ref, True, True),
                "optimizer": [{"state": {}, "param_groups": []}]}, path)
    return path


def test_a_pickled_training_checkpoint_is_refused_with_the_opt_in_named(training_checkpoint):
    with pytest.raises(checkpoint.PickledCheckpointError, match="pickled Python objects.*--trust-pickle"):
        export.build_clip("8m-16", training_checkpoint)
    out = training_checkpoint.with_name("converted.pt")
    assert cli.main(["models", "convert-checkpoint", str(training_checkpoint), str(out)]) == 2
    assert not out.exists()


def test_the_opt_in_conversion_writes_a_tensors_only_file(training_checkpoint, clip_ref):
    out = training_checkpoint.with_name("converted.pt")
    assert cli.main(["models", "convert-checkpoint", str(training_checkpoint), str(out),
                     "--trust-pickle"]) == 0
    raw = torch.load(out, weights_only=True)  # the converted file needs no trust
    assert set(raw) == {"state_dict"}
    model, _ = export.build_clip("8m-16", out)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in clip_ref.items())
    # a file that is already tensors only converts without the opt-in
    again = out.with_name("again.pt")
    assert cli.main(["models", "convert-checkpoint", str(out), str(again)]) == 0
    assert torch.load(again, weights_only=True)["state_dict"].keys() == raw["state_dict"].keys()
