"""The attribute teacher: a known-answer CLIP-interface model set whose embedding words compose.

A second known-answer set beside :mod:`tinyvlm_ros.testing.models` (same SAM graphs, same
manifest format, kind ``known-answer``), made for distilling the MCU encoder with held-out words:

* ``clip_visual`` measures three attributes of the mask-aware crop's foreground, each as soft
  scores: colour (similarity to the nine :data:`~tinyvlm_ros.testing.scenes.ATTRIBUTE_COLOURS`),
  shape (fill ratio and aspect of the foreground's extent against the six
  :data:`~tinyvlm_ros.testing.scenes.ATTRIBUTE_SHAPES`) and pattern (the share of interior pixels
  on a strong horizontal / vertical brightness step: plain, striped, banded, checkered).  The
  scores, a constant *neutral* and an always-zero *other*, are mapped through a fixed orthonormal
  codebook: every attribute value is one direction spread over all ``embed_dim`` dimensions.
* ``clip_text`` *sums* the codebook rows of its tokens (colour, shape and pattern words and
  synonyms; generic words give *neutral*, template words nothing, any other word *other*), so an
  unseen combination of words ("cyan oval") has the embedding of exactly the objects it names.

The embedding has :data:`N_FEATURES` word-addressable directions (21 at the defaults), more than a
16-dim prefix can hold apart, so Matryoshka prefixes show a trade-off.  Object size is not a word:
a mask-aware crop rescales every object to the crop, so no crop can tell it (scenes vary it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np
from onnx import TensorProto, helper

from tinyvlm_ros.engine.tokenizer import ClipTokenizer, train_merges, write_merges
from tinyvlm_ros.models.manifest import sha256_file
from tinyvlm_ros.testing.models import (CLIP_MEAN, CLIP_STD, NEUTRAL_WEIGHT, NEUTRAL_WORDS, SAM_PIXEL_MEAN,
                                        SAM_PIXEL_STD, STOP_WORDS, _const, _save, make_sam_decoder,
                                        make_sam_encoder)
from tinyvlm_ros.testing.scenes import ATTRIBUTE_COLOURS, ATTRIBUTE_SHAPES, PATTERNS

#: Shape words and synonyms.
SHAPE_WORDS = {
    "block": ("block", "cube", "square"),
    "ball": ("ball", "sphere", "disc"),
    "triangle": ("triangle", "pyramid", "wedge"),
    "bar": ("bar", "plank"),
    "pillar": ("pillar", "post"),
    "oval": ("oval", "ellipse"),
}
#: Pattern words and synonyms.
PATTERN_WORDS = {
    "plain": ("plain", "solid"),
    "striped": ("striped", "stripy"),
    "banded": ("banded", "ringed"),
    "checkered": ("checkered", "chequered"),
}
#: (fill ratio, log aspect) of each shape's foreground inside its own extent.
SHAPE_SIGNATURE = {
    "block": (1.0, 0.0), "ball": (float(np.pi / 4), 0.0), "triangle": (0.5, 0.0),
    "bar": (1.0, float(np.log(2.0))), "pillar": (1.0, float(-np.log(2.0))),
    "oval": (float(np.pi / 4), float(np.log(2.0))),
}
COLOUR_NAMES = list(ATTRIBUTE_COLOURS)
SHAPE_NAMES = list(ATTRIBUTE_SHAPES)
PATTERN_NAMES = list(PATTERNS)
FEATURE_NAMES = COLOUR_NAMES + SHAPE_NAMES + PATTERN_NAMES + ["neutral", "other"]
N_FEATURES = len(FEATURE_NAMES)
#: Seed of the orthonormal codebook (features -> embedding directions).
CODEBOOK_SEED = 1234
#: A brightness step (summed over RGB, 0..1 per channel) this large is a pattern edge, not noise.
STEP = 0.2
#: Share of interior pixels on a step at which a direction counts as patterned (logistic centre, width).
STEP_SHARE, STEP_WIDTH = 0.05, 0.015


def codebook(embed_dim: int) -> np.ndarray:
    """Orthonormal float32 [N_FEATURES, embed_dim]: the embedding direction of every feature."""
    if embed_dim < N_FEATURES:
        raise ValueError(f"embed_dim must be >= {N_FEATURES}, got {embed_dim}")
    g = np.random.default_rng(CODEBOOK_SEED).normal(size=(embed_dim, N_FEATURES))
    q, _ = np.linalg.qr(g)
    return q.T.astype(np.float32)


def make_attribute_visual(path: Path, image_size: int, embed_dim: int) -> Path:
    """Write the attribute CLIP visual tower: pixel_values [B,3,R,R] -> image_embeds [B,D]."""
    protos = np.array([ATTRIBUTE_COLOURS[c] for c in COLOUR_NAMES], np.float32) / 255.0
    n_col = len(COLOUR_NAMES)
    sig = np.array([SHAPE_SIGNATURE[s] for s in SHAPE_NAMES], np.float32)
    sigma, fill_sigma, aspect_sigma = 0.12, 0.1, 0.2
    r = image_size
    nodes = [
        _const("std", np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1)),
        _const("mean", np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)),
        helper.make_node("Mul", ["pixel_values", "std"], ["x_std"]),
        helper.make_node("Add", ["x_std", "mean"], ["rgb"]),
        helper.make_node("Abs", ["pixel_values"], ["absx"]),
        _const("ax1", [1], np.int64), _const("ax2", [2], np.int64), _const("ax3", [3], np.int64),
        _const("ax23", [2, 3], np.int64), _const("ax12", [1, 2], np.int64),
        _const("ax123", [1, 2, 3], np.int64),
        helper.make_node("ReduceSum", ["absx", "ax1"], ["fgscore"], keepdims=1),
        _const("fg_thr", 0.05),
        helper.make_node("Greater", ["fgscore", "fg_thr"], ["fg_b"]),
        helper.make_node("Cast", ["fg_b"], ["fg"], to=TensorProto.FLOAT),  # [B,1,R,R]
        _const("one", 1.0), _const("zero", 0.0), _const("eps", 1e-6),
        # colour: mean Gaussian similarity of the foreground to every prototype, relative to the best
        helper.make_node("Unsqueeze", ["rgb", "ax1"], ["rgb5"]),
        _const("protos", protos.reshape(1, n_col, 3, 1, 1)),
        helper.make_node("Sub", ["rgb5", "protos"], ["pd"]),
        helper.make_node("Mul", ["pd", "pd"], ["pd2"]),
        helper.make_node("ReduceSum", ["pd2", "ax2"], ["cd2"], keepdims=0),
        _const("neg_inv2s2", -1.0 / (2 * sigma * sigma)),
        helper.make_node("Mul", ["cd2", "neg_inv2s2"], ["cexp"]),
        helper.make_node("Exp", ["cexp"], ["csim"]),
        helper.make_node("Mul", ["csim", "fg"], ["csim_fg"]),
        helper.make_node("ReduceSum", ["csim_fg", "ax23"], ["csum"], keepdims=0),  # [B,C]
        helper.make_node("ReduceSum", ["fg", "ax123"], ["area"], keepdims=0),  # [B]
        _const("shape_b1", [-1, 1], np.int64),
        helper.make_node("Reshape", ["area", "shape_b1"], ["area_c"]),  # [B,1]
        helper.make_node("Max", ["area_c", "one"], ["area1"]),
        helper.make_node("Div", ["csum", "area1"], ["cmean"]),
        helper.make_node("ReduceMax", ["cmean", "ax1"], ["cbest"], keepdims=1),
        helper.make_node("Add", ["cbest", "eps"], ["cbest_e"]),
        helper.make_node("Div", ["cmean", "cbest_e"], ["cnorm"]),
        # grey crops (the table) carry no attribute: a soft gate on the best colour match (patterned
        # objects match on their light half only, hence the low gate)
        _const("gate_lo", 0.1), _const("gate_scale", 1.0 / 0.2),
        helper.make_node("Sub", ["cbest", "gate_lo"], ["g0"]),
        helper.make_node("Mul", ["g0", "gate_scale"], ["g1"]),
        helper.make_node("Clip", ["g1", "zero", "one"], ["gate"]),
        helper.make_node("Mul", ["cnorm", "gate"], ["colour_feat"]),
        # shape: fill ratio and log aspect of the foreground's extent
        helper.make_node("ReduceMax", ["fg", "ax3"], ["rowany"], keepdims=0),  # [B,1,R]
        helper.make_node("ReduceMax", ["fg", "ax2"], ["colany"], keepdims=0),
        helper.make_node("ReduceSum", ["rowany", "ax12"], ["h"], keepdims=0),
        helper.make_node("ReduceSum", ["colany", "ax12"], ["w"], keepdims=0),
        helper.make_node("Max", ["h", "one"], ["h1"]),
        helper.make_node("Max", ["w", "one"], ["w1"]),
        helper.make_node("Mul", ["h1", "w1"], ["hw"]),
        helper.make_node("Reshape", ["hw", "shape_b1"], ["hw_c"]),
        helper.make_node("Div", ["area_c", "hw_c"], ["fill"]),  # [B,1]
        helper.make_node("Div", ["w1", "h1"], ["aspect"]),
        helper.make_node("Log", ["aspect"], ["log_aspect0"]),
        helper.make_node("Reshape", ["log_aspect0", "shape_b1"], ["log_aspect"]),
        _const("fills", sig[:, 0].reshape(1, -1)), _const("aspects", sig[:, 1].reshape(1, -1)),
        helper.make_node("Sub", ["fill", "fills"], ["fd"]),
        helper.make_node("Mul", ["fd", "fd"], ["fd2"]),
        _const("inv_f", 1.0 / (2 * fill_sigma * fill_sigma)),
        helper.make_node("Mul", ["fd2", "inv_f"], ["fterm"]),
        helper.make_node("Sub", ["log_aspect", "aspects"], ["ad"]),
        helper.make_node("Mul", ["ad", "ad"], ["ad2"]),
        _const("inv_a", 1.0 / (2 * aspect_sigma * aspect_sigma)),
        helper.make_node("Mul", ["ad2", "inv_a"], ["aterm"]),
        helper.make_node("Add", ["fterm", "aterm"], ["sterm"]),
        helper.make_node("Neg", ["sterm"], ["sneg"]),
        helper.make_node("Exp", ["sneg"], ["ssim"]),  # [B,S]
        helper.make_node("ReduceMax", ["ssim", "ax1"], ["sbest"], keepdims=1),
        helper.make_node("Add", ["sbest", "eps"], ["sbest_e"]),
        helper.make_node("Div", ["ssim", "sbest_e"], ["snorm"]),
        helper.make_node("Mul", ["snorm", "gate"], ["shape_feat"]),
        # pattern: share of interior pixels on a strong step, along x and along y
        helper.make_node("Sub", ["one", "fg"], ["bg"]),
        helper.make_node("MaxPool", ["bg"], ["bg_grown"], kernel_shape=[5, 5], pads=[2, 2, 2, 2],
                         strides=[1, 1]),
        helper.make_node("Sub", ["one", "bg_grown"], ["inner"]),  # fg eroded by 2 px: no object edge
    ]
    for axis, name in ((3, "x"), (2, "y")):
        nodes += [
            _const(f"s0_{name}", [0], np.int64), _const(f"s1_{name}", [1], np.int64),
            _const(f"e0_{name}", [r - 1], np.int64), _const(f"e1_{name}", [r], np.int64),
            _const(f"axis_{name}", [axis], np.int64),
            helper.make_node("Slice", ["rgb", f"s1_{name}", f"e1_{name}", f"axis_{name}"], [f"hi_{name}"]),
            helper.make_node("Slice", ["rgb", f"s0_{name}", f"e0_{name}", f"axis_{name}"], [f"lo_{name}"]),
            helper.make_node("Sub", [f"hi_{name}", f"lo_{name}"], [f"d_{name}"]),
            helper.make_node("Abs", [f"d_{name}"], [f"ad_{name}"]),
            helper.make_node("ReduceSum", [f"ad_{name}", "ax1"], [f"step_{name}"], keepdims=1),
            _const(f"step_thr_{name}", STEP),
            helper.make_node("Greater", [f"step_{name}", f"step_thr_{name}"], [f"strong_b_{name}"]),
            helper.make_node("Cast", [f"strong_b_{name}"], [f"strong_{name}"], to=TensorProto.FLOAT),
            helper.make_node("Slice", ["inner", f"s1_{name}", f"e1_{name}", f"axis_{name}"], [f"in_{name}"]),
            helper.make_node("Mul", [f"strong_{name}", f"in_{name}"], [f"hit_{name}"]),
            helper.make_node("ReduceSum", [f"hit_{name}", "ax123"], [f"nhit_{name}"], keepdims=0),
            helper.make_node("ReduceSum", [f"in_{name}", "ax123"], [f"nin_{name}"], keepdims=0),
            helper.make_node("Max", [f"nin_{name}", "one"], [f"nin1_{name}"]),
            helper.make_node("Div", [f"nhit_{name}", f"nin1_{name}"], [f"share_{name}"]),
            _const(f"centre_{name}", STEP_SHARE), _const(f"width_{name}", 1.0 / STEP_WIDTH),
            helper.make_node("Sub", [f"share_{name}", f"centre_{name}"], [f"z0_{name}"]),
            helper.make_node("Mul", [f"z0_{name}", f"width_{name}"], [f"z_{name}"]),
            helper.make_node("Sigmoid", [f"z_{name}"], [f"p0_{name}"]),
            helper.make_node("Reshape", [f"p0_{name}", "shape_b1"], [f"p_{name}"]),  # [B,1]
            helper.make_node("Sub", ["one", f"p_{name}"], [f"q_{name}"]),
        ]
    nodes += [
        helper.make_node("Mul", ["q_x", "q_y"], ["pat_plain"]),
        helper.make_node("Mul", ["p_x", "q_y"], ["pat_striped"]),  # vertical stripes: steps along x
        helper.make_node("Mul", ["q_x", "p_y"], ["pat_banded"]),
        helper.make_node("Mul", ["p_x", "p_y"], ["pat_checkered"]),
        helper.make_node("Concat", ["pat_plain", "pat_striped", "pat_banded", "pat_checkered"], ["pat"],
                         axis=1),
        helper.make_node("Mul", ["pat", "gate"], ["pattern_feat"]),
        helper.make_node("Mul", ["area_c", "zero"], ["zcol"]),
        _const("neutral_w", NEUTRAL_WEIGHT),
        helper.make_node("Add", ["zcol", "neutral_w"], ["neutral"]),
        helper.make_node("Concat", ["colour_feat", "shape_feat", "pattern_feat", "neutral", "zcol"], ["feat"],
                         axis=1),
        _const("codebook", codebook(embed_dim)),
        helper.make_node("MatMul", ["feat", "codebook"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes, "attribute_clip_visual",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["B", 3, image_size, image_size])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["B", embed_dim])])
    return _save(graph, path)


def keyword_corpus() -> List[str]:
    """Words the attribute merges make into single tokens."""
    words: List[str] = list(COLOUR_NAMES) + list(STOP_WORDS) + list(NEUTRAL_WORDS)
    for table in (SHAPE_WORDS, PATTERN_WORDS):
        for syn in table.values():
            words.extend(syn)
    return [w for w in words if len(w) > 1 or w.isalpha()]


def _text_table(tokenizer: ClipTokenizer, embed_dim: int) -> np.ndarray:
    """Embedding row per token id: the codebook row of its feature, nothing, or *other*."""
    book = codebook(embed_dim)
    table = np.tile(book[FEATURE_NAMES.index("other")], (tokenizer.vocab_size, 1))
    for tid in (0, tokenizer.sot_token_id, tokenizer.eot_token_id):
        table[tid] = 0.0  # padding and the start/end tokens add nothing

    def single_id(word: str) -> int:
        ids = tokenizer.encode(word)
        if len(ids) != 1:
            raise ValueError(f"attribute merges do not make {word!r} one token: {ids}")
        return ids[0]

    for word in STOP_WORDS:
        table[single_id(word)] = 0.0
    for word in NEUTRAL_WORDS:
        table[single_id(word)] = book[FEATURE_NAMES.index("neutral")]
    for colour in COLOUR_NAMES:
        table[single_id(colour)] = book[FEATURE_NAMES.index(colour)]
    for words in (SHAPE_WORDS, PATTERN_WORDS):
        for feature, syns in words.items():
            for word in syns:
                table[single_id(word)] = book[FEATURE_NAMES.index(feature)]
    return table


def make_attribute_text(path: Path, tokenizer: ClipTokenizer, embed_dim: int) -> Path:
    """Write the attribute CLIP text tower: input_ids [B,77] int64 -> text_embeds [B,D] (sum of its words)."""
    nodes = [
        _const("table", _text_table(tokenizer, embed_dim)),
        helper.make_node("Gather", ["table", "input_ids"], ["tok"], axis=0),
        _const("ax1", [1], np.int64),
        helper.make_node("ReduceSum", ["tok", "ax1"], ["text_embeds"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "attribute_clip_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", tokenizer.context_length])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["B", embed_dim])])
    return _save(graph, path)


def make_attribute_set(out_dir: Union[str, Path], input_size: int = 256, embed_dim: int = 128,
                       image_size: int = 64, context_length: int = 77) -> Path:
    """Write the attribute teacher model set (``manifest.json`` kind ``known-answer``).

    Args:
        out_dir: directory to create (or overwrite files in).
        input_size: SAM encoder input S (multiple of 64).
        embed_dim: CLIP embedding size D (>= :data:`N_FEATURES`).
        image_size: CLIP crop size R (>= 16).
        context_length: token sequence length.
    """
    if input_size % 64 or input_size < 64:
        raise ValueError(f"input_size must be a positive multiple of 64, got {input_size}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    codebook(embed_dim)  # validates embed_dim
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges_path = write_merges(out / "bpe_vocab.txt.gz", train_merges(keyword_corpus()))
    tokenizer = ClipTokenizer(merges_path, context_length)
    files: Dict[str, Path] = {
        "sam_encoder.onnx": make_sam_encoder(out / "sam_encoder.onnx", input_size),
        "sam_decoder.onnx": make_sam_decoder(out / "sam_decoder.onnx", input_size),
        "clip_visual.onnx": make_attribute_visual(out / "clip_visual.onnx", image_size, embed_dim),
        "clip_text.onnx": make_attribute_text(out / "clip_text.onnx", tokenizer, embed_dim),
        "bpe_vocab.txt.gz": merges_path,
    }
    manifest = {
        "format": 1,
        "name": f"known-answer-attributes-s{input_size}-d{embed_dim}",
        "kind": "known-answer",
        "sam": {"encoder": "sam_encoder.onnx", "decoder": "sam_decoder.onnx",
                "input_size": input_size, "embed_size": input_size // 16,
                "pixel_mean": SAM_PIXEL_MEAN, "pixel_std": SAM_PIXEL_STD},
        "clip": {"visual": "clip_visual.onnx", "text": "clip_text.onnx",
                 "image_size": image_size, "embed_dim": embed_dim, "context_length": context_length,
                 "mean": CLIP_MEAN, "std": CLIP_STD, "tokenizer": "bpe_vocab.txt.gz",
                 "logit_scale": 100.0},
        "files": {name: sha256_file(p) for name, p in sorted(files.items())},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def is_attribute_set(model_dir: Union[str, Path]) -> bool:
    """Tell whether a model set directory holds the attribute teacher (by its manifest name)."""
    path = Path(model_dir) / "manifest.json"
    if not path.exists():
        return False
    return str(json.loads(path.read_text()).get("name", "")).startswith("known-answer-attributes")


def feature_names() -> Sequence[str]:
    """Names of the attribute teacher's features, in codebook order."""
    return tuple(FEATURE_NAMES)
