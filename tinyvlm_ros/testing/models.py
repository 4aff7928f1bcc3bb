"""Known-answer model sets: tiny ONNX graphs with the real interfaces and known right answers.

The graphs have exactly the inputs and outputs of ``docs/models.md`` (SAM
encoder/decoder, CLIP visual/text towers, a BPE merges file) but compute
something simple and exact, so end-to-end tests on :mod:`tinyvlm_ros.testing.scenes`
frames can assert the right box:

* ``sam_encoder`` packs the image, average-pooled to the low-res mask grid
  (S/4), into the first 48 of the 256 embedding channels (space-to-depth).
* ``sam_decoder`` is a *colour-region segmenter*: it reads the colour under the
  first prompt point and flood-fills (repeated 3x3 max-pool gated by colour
  distance) the connected cells of similar colour, at three tolerances for the
  three multimask outputs.  Logits are ``gain * (tolerance - distance)`` inside
  the region, so bilinear upsampling puts the edge between cells.  The IoU
  prediction is high when the region's colour is coherent.
* ``clip_visual`` is a *colour/shape matcher*: over the mask-aware crop's
  foreground (pixels not equal to the CLIP mean fill) it measures similarity
  to the six :data:`~tinyvlm_ros.testing.scenes.COLOURS` and the fill ratio of the
  foreground's extent (block ~1, ball ~pi/4, triangle ~1/2).  Features:
  ``[6 colours, 3 shapes, neutral, other, 0...]``; colour and shape features
  are gated off for grey (table) crops.
* ``clip_text`` embeds each token through a fixed table and max-pools:
  colour and shape words (and synonyms) map to their feature, generic words
  ("object", "background") to *neutral*, template words ("a photo of") to
  nothing, and every other token to *other*, which no crop has.

Geometry of the answer (unit vectors, neutral weight 0.85 in crops): a crop
that matches every word of the phrase scores above the generic prompts, a
crop that misses a word scores below them, so the calibrated matcher says
"nothing here" for absent objects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, FrozenSet, List, Sequence, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinyvlm_ros.engine.tokenizer import ClipTokenizer, train_merges, write_merges
from tinyvlm_ros.models.manifest import sha256_file
from tinyvlm_ros.testing.scenes import COLOURS

OPSET = 18
#: ORT accepts IR <= 13 for onnx 1.23 graphs; 8 is plenty for these ops.
IR_VERSION = 8

SAM_PIXEL_MEAN = [123.675, 116.28, 103.53]
SAM_PIXEL_STD = [58.395, 57.12, 57.375]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

#: Colour-distance tolerances (SAM-normalised units) of the three multimask outputs.
MASK_TOLERANCES = (0.5, 0.8, 1.2)
MASK_GAIN = 8.0

SHAPE_WORDS = {
    "block": ("block", "cube", "box", "square", "brick"),
    "ball": ("ball", "sphere", "disc", "circle", "orb"),
    "triangle": ("triangle", "pyramid", "wedge"),
}
#: Fill ratio of each shape inside its own extent.
SHAPE_FILL = {"block": 1.0, "ball": float(np.pi / 4), "triangle": 0.5}
NEUTRAL_WORDS = ("object", "objects", "thing", "things", "something", "background", "table", "surface",
                 "floor", "stuff", "item", "scene", "clutter")
STOP_WORDS = ("a", "an", "the", "of", "photo", "picture", "image", "this", "that", "is", "and", "one",
              ".", ",", "-", "some")
NEUTRAL_WEIGHT = 0.85

COLOUR_NAMES = list(COLOURS)
SHAPE_NAMES = list(SHAPE_WORDS)
FEATURE_NAMES = COLOUR_NAMES + SHAPE_NAMES + ["neutral", "other"]


def _const(name: str, value, dtype=np.float32) -> onnx.NodeProto:
    arr = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name))


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tinyvlm_ros.testing.models")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_sam_encoder(path: Path, input_size: int) -> Path:
    """Write the known-answer SAM encoder: image [1,3,S,S] -> image_embeddings [1,256,S/16,S/16]."""
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("SpaceToDepth", ["pooled"], ["packed"], blocksize=4),
        _const("pads", [0, 0, 0, 0, 0, 256 - 48, 0, 0], np.int64),
        helper.make_node("Pad", ["packed", "pads"], ["image_embeddings"], mode="constant"),
    ]
    e = input_size // 16
    graph = helper.make_graph(
        nodes, "known_answer_sam_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, input_size, input_size])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, e, e])])
    return _save(graph, path)


def make_sam_decoder(path: Path, input_size: int) -> Path:
    """Write the known-answer SAM decoder (colour-region flood fill), SAM's decoder I/O."""
    return _save(_sam_decoder_graph(input_size, windowed=False), path)


def make_sam_window_decoder(path: Path, input_size: int) -> Path:
    """Write the known-answer windowed SAM decoder: the same flood fill on a window of the embedding.

    Inputs are those of the real windowed decoder (``docs/models.md``): the window of the image
    embedding per prompt [B,256,H,W], its origin in embedding cells [B,2] (x, y), and the prompts in
    the S frame.  A region that does not reach the window's edge cells gives exactly the full
    decoder's logits and IoU prediction inside the window.
    """
    return _save(_sam_decoder_graph(input_size, windowed=True), path)


def _sam_decoder_graph(input_size: int, windowed: bool) -> onnx.GraphProto:
    e = input_size // 16
    low = 4 * e
    # enough growing steps to cross the whole grid's objects; a window never needs more
    iters = max(8, low // 4)
    tol = np.array(MASK_TOLERANCES, np.float32).reshape(1, 3, 1, 1)
    nodes = [
        _const("c_starts", [0], np.int64), _const("c_ends", [48], np.int64), _const("c_axes", [1], np.int64),
        helper.make_node("Slice", ["image_embeddings", "c_starts", "c_ends", "c_axes"], ["emb48"]),
        # [1,3,L,L] (full) or [B,3,4H,4W] (one window per prompt)
        helper.make_node("DepthToSpace", ["emb48"], ["colour"], blocksize=4, mode="DCR"),
        # first point of each prompt, in S-frame pixels -> low-res cell index
        _const("idx0", 0, np.int64),
        helper.make_node("Gather", ["point_coords", "idx0"], ["p0"], axis=1),  # [B,2]
        _const("quarter", 0.25),
        helper.make_node("Mul", ["p0", "quarter"], ["p0c"]),
        helper.make_node("Floor", ["p0c"], ["p0g"]),
        _const("zero_f", 0.0),
    ]
    if windowed:
        nodes += [
            # cell in the window: global cell - 4 x origin (embedding cells are 4 low-res cells)
            _const("four", 4.0),
            helper.make_node("Mul", ["window_origin", "four"], ["origin_low"]),
            helper.make_node("Sub", ["p0g", "origin_low"], ["p0f"]),
            helper.make_node("Shape", ["colour"], ["cshape"]),
            _const("i_h", [2], np.int64), _const("i_w", [3], np.int64),
            helper.make_node("Gather", ["cshape", "i_h"], ["h_i"]),
            helper.make_node("Gather", ["cshape", "i_w"], ["w_i"]),
            helper.make_node("Cast", ["h_i"], ["h_f1"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["w_i"], ["w_f1"], to=TensorProto.FLOAT),
            _const("one_v", [1.0]),
            helper.make_node("Sub", ["w_f1", "one_v"], ["wmax1"]),
            helper.make_node("Sub", ["h_f1", "one_v"], ["hmax1"]),
            helper.make_node("Concat", ["wmax1", "hmax1"], ["cmax"], axis=0),  # [2]: x max, y max
            helper.make_node("Max", ["p0f", "zero_f"], ["p0lo"]),
            helper.make_node("Min", ["p0lo", "cmax"], ["cell"]),
            _const("s_zero", 0.0), _const("s_one", 1.0),
            helper.make_node("Squeeze", ["w_f1"], ["w_f"]),
            helper.make_node("Squeeze", ["h_f1"], ["h_f"]),
            helper.make_node("Range", ["s_zero", "w_f", "s_one"], ["rx"]),
            helper.make_node("Range", ["s_zero", "h_f", "s_one"], ["ry"]),
            _const("shape_x", [1, 1, 1, -1], np.int64), _const("shape_y", [1, 1, -1, 1], np.int64),
            helper.make_node("Reshape", ["rx", "shape_x"], ["gx"]),
            helper.make_node("Reshape", ["ry", "shape_y"], ["gy"]),
        ]
    else:
        nodes += [
            _const("lmax", float(low - 1)),
            helper.make_node("Clip", ["p0g", "zero_f", "lmax"], ["cell"]),
            _const("gx", np.arange(low, dtype=np.float32).reshape(1, 1, 1, low)),
            _const("gy", np.arange(low, dtype=np.float32).reshape(1, 1, low, 1)),
        ]
    nodes += [
        _const("shape_b1111", [-1, 1, 1, 1], np.int64),
        _const("i_x", 0, np.int64), _const("i_y", 1, np.int64),
        helper.make_node("Gather", ["cell", "i_x"], ["cx_flat"], axis=1),
        helper.make_node("Gather", ["cell", "i_y"], ["cy_flat"], axis=1),
        helper.make_node("Reshape", ["cx_flat", "shape_b1111"], ["cx"]),
        helper.make_node("Reshape", ["cy_flat", "shape_b1111"], ["cy"]),
        helper.make_node("Equal", ["gx", "cx"], ["eqx"]),
        helper.make_node("Equal", ["gy", "cy"], ["eqy"]),
        helper.make_node("And", ["eqx", "eqy"], ["seed_b"]),
        helper.make_node("Cast", ["seed_b"], ["seed"], to=TensorProto.FLOAT),  # [B,1,L,L]
        helper.make_node("Mul", ["colour", "seed"], ["seed_rgb"]),
        _const("ax23", [2, 3], np.int64), _const("ax1", [1], np.int64),
        helper.make_node("ReduceSum", ["seed_rgb", "ax23"], ["ref"], keepdims=1),  # [B,3,1,1]
        helper.make_node("Sub", ["colour", "ref"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["diff2"]),
        helper.make_node("ReduceSum", ["diff2", "ax1"], ["d2"], keepdims=1),
        helper.make_node("Sqrt", ["d2"], ["dist"]),  # [B,1,L,L]
        _const("tol", tol),
        helper.make_node("Less", ["dist", "tol"], ["sim_b"]),
        helper.make_node("Cast", ["sim_b"], ["sim"], to=TensorProto.FLOAT),  # [B,3,L,L]
        helper.make_node("Mul", ["seed", "sim"], ["region0"]),
    ]
    prev = "region0"
    for i in range(iters):
        nodes.append(helper.make_node("MaxPool", [prev], [f"grow{i}"], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], strides=[1, 1]))
        nodes.append(helper.make_node("Mul", [f"grow{i}", "sim"], [f"region{i + 1}"]))
        prev = f"region{i + 1}"
    nodes += [
        helper.make_node("Sub", ["tol", "dist"], ["margin"]),
        _const("gain", MASK_GAIN),
        helper.make_node("Mul", ["margin", "gain"], ["lin"]),
        # outside the region: the linear logit where it is already negative (keeps edges sub-cell),
        # a small negative value for similar colours that are not connected to the prompt
        _const("one", 1.0), _const("out_cap", -0.25),
        helper.make_node("Min", ["lin", "out_cap"], ["outside0"]),
        helper.make_node("Greater", ["lin", "zero_f"], ["similar_b"]),
        helper.make_node("Cast", ["similar_b"], ["similar"], to=TensorProto.FLOAT),
        _const("disconnected_drop", 2.0),
        helper.make_node("Mul", ["similar", "disconnected_drop"], ["drop"]),
        helper.make_node("Sub", ["outside0", "drop"], ["outside"]),
        helper.make_node("Sub", ["one", prev], ["not_region"]),
        helper.make_node("Mul", [prev, "lin"], ["in_part"]),
        helper.make_node("Mul", ["not_region", "outside"], ["out_part"]),
        helper.make_node("Add", ["in_part", "out_part"], ["low_res_masks"]),
        # IoU prediction: 1 - mean colour distance in the region / (2 * tolerance), 0 if empty
        helper.make_node("ReduceSum", [prev, "ax23"], ["area"], keepdims=0),  # [B,3]
        helper.make_node("Mul", [prev, "dist"], ["rd"]),
        helper.make_node("ReduceSum", ["rd", "ax23"], ["dsum"], keepdims=0),
        helper.make_node("Max", ["area", "one"], ["area1"]),
        helper.make_node("Div", ["dsum", "area1"], ["dmean"]),
        _const("two_tol", 2.0 * np.array(MASK_TOLERANCES, np.float32).reshape(1, 3)),
        helper.make_node("Div", ["dmean", "two_tol"], ["dratio"]),
        helper.make_node("Sub", ["one", "dratio"], ["q"]),
        helper.make_node("Greater", ["area", "zero_f"], ["nonempty_b"]),
        helper.make_node("Cast", ["nonempty_b"], ["nonempty"], to=TensorProto.FLOAT),
        # edge fit: the best tolerance is half the colour step to the ring of cells just outside,
        # which puts the mask edge where a cell is half object, half surroundings
        helper.make_node("MaxPool", [prev], ["dilated"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1]),
        helper.make_node("Sub", ["dilated", prev], ["ring"]),
        helper.make_node("ReduceSum", ["ring", "ax23"], ["ring_area"], keepdims=0),
        helper.make_node("Mul", ["ring", "dist"], ["ring_d"]),
        helper.make_node("ReduceSum", ["ring_d", "ax23"], ["ring_dsum"], keepdims=0),
        helper.make_node("Max", ["ring_area", "one"], ["ring_area1"]),
        helper.make_node("Div", ["ring_dsum", "ring_area1"], ["ring_mean"]),
        _const("half", 0.5), _const("min_half", 0.1),
        helper.make_node("Mul", ["ring_mean", "half"], ["ideal"]),
        helper.make_node("Max", ["ideal", "min_half"], ["ideal1"]),
        _const("tol2", np.array(MASK_TOLERANCES, np.float32).reshape(1, 3)),
        helper.make_node("Sub", ["tol2", "ideal1"], ["miss"]),
        helper.make_node("Abs", ["miss"], ["abs_miss"]),
        helper.make_node("Div", ["abs_miss", "ideal1"], ["rel_miss"]),
        helper.make_node("Mul", ["rel_miss", "half"], ["fit_loss"]),
        helper.make_node("Sub", ["one", "fit_loss"], ["fit"]),
        helper.make_node("Mul", ["q", "fit"], ["qf"]),
        helper.make_node("Mul", ["qf", "nonempty"], ["q2"]),
        helper.make_node("Clip", ["q2", "zero_f", "one"], ["iou_predictions"]),
    ]
    points = [helper.make_tensor_value_info("point_coords", TensorProto.FLOAT, ["B", "N", 2]),
              helper.make_tensor_value_info("point_labels", TensorProto.FLOAT, ["B", "N"])]
    if windowed:
        inputs = [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, ["B", 256, "H", "W"]),
                  helper.make_tensor_value_info("window_origin", TensorProto.FLOAT, ["B", 2])] + points
        mask_shape = ["B", 3, "H4", "W4"]
    else:
        inputs = [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, e, e])]
        inputs += points
        inputs += [helper.make_tensor_value_info("mask_input", TensorProto.FLOAT, ["B", 1, low, low]),
                   helper.make_tensor_value_info("has_mask_input", TensorProto.FLOAT, [1])]
        mask_shape = ["B", 3, low, low]
    return helper.make_graph(
        nodes, "known_answer_sam_window_decoder" if windowed else "known_answer_sam_decoder", inputs,
        [helper.make_tensor_value_info("low_res_masks", TensorProto.FLOAT, mask_shape),
         helper.make_tensor_value_info("iou_predictions", TensorProto.FLOAT, ["B", 3])])


def make_clip_visual(path: Path, image_size: int, embed_dim: int) -> Path:
    """Write the known-answer CLIP visual tower: pixel_values [B,3,R,R] -> image_embeds [B,D]."""
    protos = np.array([COLOURS[c] for c in COLOUR_NAMES], np.float32) / 255.0  # [6,3]
    sigma = 0.12
    fills = np.array([SHAPE_FILL[s] for s in SHAPE_NAMES], np.float32).reshape(1, 3)
    fill_sigma = 0.1
    n_pad = embed_dim - len(FEATURE_NAMES)
    nodes = [
        _const("std", np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1)),
        _const("mean", np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)),
        helper.make_node("Mul", ["pixel_values", "std"], ["x_std"]),
        helper.make_node("Add", ["x_std", "mean"], ["rgb"]),  # [B,3,R,R] in [0,1]
        # foreground: anything not the mean fill (normalised value 0)
        helper.make_node("Abs", ["pixel_values"], ["absx"]),
        _const("ax1", [1], np.int64), _const("ax2", [2], np.int64), _const("ax3", [3], np.int64),
        _const("ax23", [2, 3], np.int64), _const("ax12", [1, 2], np.int64),
        helper.make_node("ReduceSum", ["absx", "ax1"], ["fgscore"], keepdims=1),
        _const("fg_thr", 0.05),
        helper.make_node("Greater", ["fgscore", "fg_thr"], ["fg_b"]),
        helper.make_node("Cast", ["fg_b"], ["fg"], to=TensorProto.FLOAT),  # [B,1,R,R]
        # colour similarity of every pixel to every prototype
        helper.make_node("Unsqueeze", ["rgb", "ax1"], ["rgb5"]),  # [B,1,3,R,R]
        _const("protos", protos.reshape(1, 6, 3, 1, 1)),
        helper.make_node("Sub", ["rgb5", "protos"], ["pd"]),
        helper.make_node("Mul", ["pd", "pd"], ["pd2"]),
        helper.make_node("ReduceSum", ["pd2", "ax2"], ["cd2"], keepdims=0),  # [B,6,R,R]
        _const("neg_inv2s2", -1.0 / (2 * sigma * sigma)),
        helper.make_node("Mul", ["cd2", "neg_inv2s2"], ["cexp"]),
        helper.make_node("Exp", ["cexp"], ["csim"]),
        helper.make_node("Mul", ["csim", "fg"], ["csim_fg"]),
        helper.make_node("ReduceSum", ["csim_fg", "ax23"], ["csum"], keepdims=0),  # [B,6]
        helper.make_node("ReduceSum", ["fg", "ax12"], ["fg_rows"], keepdims=0),  # [B,R]... area below
        helper.make_node("ReduceSum", ["fg_rows", "ax1"], ["area"], keepdims=1),  # [B,1]
        _const("one", 1.0), _const("zero", 0.0), _const("eps", 1e-6),
        helper.make_node("Max", ["area", "one"], ["area1"]),
        helper.make_node("Div", ["csum", "area1"], ["cmean"]),  # [B,6]
        helper.make_node("ReduceMax", ["cmean", "ax1"], ["cbest"], keepdims=1),  # [B,1]
        helper.make_node("Add", ["cbest", "eps"], ["cbest_e"]),
        helper.make_node("Div", ["cmean", "cbest_e"], ["cnorm"]),
        # grey crops (the table) carry no colour or shape: soft gate on the best colour match
        _const("gate_lo", 0.2), _const("gate_scale", 1.0 / 0.3),
        helper.make_node("Sub", ["cbest", "gate_lo"], ["g0"]),
        helper.make_node("Mul", ["g0", "gate_scale"], ["g1"]),
        helper.make_node("Clip", ["g1", "zero", "one"], ["gate"]),
        helper.make_node("Mul", ["cnorm", "gate"], ["colour_feat"]),
        # fill ratio of the foreground inside its own row/column extent
        helper.make_node("ReduceMax", ["fg", "ax3"], ["rowany"], keepdims=0),  # [B,1,R]
        helper.make_node("ReduceMax", ["fg", "ax2"], ["colany"], keepdims=0),
        helper.make_node("ReduceSum", ["rowany", "ax12"], ["h"], keepdims=0),
        helper.make_node("ReduceSum", ["colany", "ax12"], ["w"], keepdims=0),
        helper.make_node("Mul", ["h", "w"], ["hw"]),
        helper.make_node("Max", ["hw", "one"], ["hw1"]),
        _const("shape_b1", [-1, 1], np.int64),
        helper.make_node("Reshape", ["hw1", "shape_b1"], ["hw1r"]),
        helper.make_node("Div", ["area", "hw1r"], ["fill"]),  # [B,1]
        _const("fills", fills),
        helper.make_node("Sub", ["fill", "fills"], ["fd"]),
        helper.make_node("Mul", ["fd", "fd"], ["fd2"]),
        _const("neg_inv2f2", -1.0 / (2 * fill_sigma * fill_sigma)),
        helper.make_node("Mul", ["fd2", "neg_inv2f2"], ["fexp"]),
        helper.make_node("Exp", ["fexp"], ["ssim"]),  # [B,3]
        helper.make_node("ReduceMax", ["ssim", "ax1"], ["sbest"], keepdims=1),
        helper.make_node("Add", ["sbest", "eps"], ["sbest_e"]),
        helper.make_node("Div", ["ssim", "sbest_e"], ["snorm"]),
        helper.make_node("Mul", ["snorm", "gate"], ["shape_feat"]),
        # neutral = constant, other = 0, padding = 0
        helper.make_node("Mul", ["area", "zero"], ["zcol"]),  # [B,1] zeros with the batch size
        _const("neutral_w", NEUTRAL_WEIGHT),
        helper.make_node("Add", ["zcol", "neutral_w"], ["neutral"]),
    ]
    parts = ["colour_feat", "shape_feat", "neutral"] + ["zcol"] * (1 + n_pad)
    nodes.append(helper.make_node("Concat", parts, ["image_embeds"], axis=1))
    graph = helper.make_graph(
        nodes, "known_answer_clip_visual",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["B", 3, image_size, image_size])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["B", embed_dim])])
    return _save(graph, path)


def _text_table(tokenizer: ClipTokenizer, embed_dim: int) -> np.ndarray:
    """Embedding row per token id: keyword features, neutral, nothing, or *other*."""
    table = np.zeros((tokenizer.vocab_size, embed_dim), np.float32)
    other = FEATURE_NAMES.index("other")
    table[:, other] = 1.0
    table[0] = 0.0  # zero padding must add nothing
    table[tokenizer.sot_token_id] = 0.0
    table[tokenizer.eot_token_id] = 0.0

    def single_id(word: str) -> int:
        ids = tokenizer.encode(word)
        if len(ids) != 1:
            raise ValueError(f"known-answer merges do not make {word!r} one token: {ids}")
        return ids[0]

    for word in STOP_WORDS:
        table[single_id(word)] = 0.0
    for word in NEUTRAL_WORDS:
        row = single_id(word)
        table[row] = 0.0
        table[row, FEATURE_NAMES.index("neutral")] = 1.0
    for colour in COLOUR_NAMES:
        row = single_id(colour)
        table[row] = 0.0
        table[row, FEATURE_NAMES.index(colour)] = 1.0
    for shape, words in SHAPE_WORDS.items():
        for word in words:
            row = single_id(word)
            table[row] = 0.0
            table[row, FEATURE_NAMES.index(shape)] = 1.0
    return table


def make_clip_text(path: Path, tokenizer: ClipTokenizer, embed_dim: int) -> Path:
    """Write the known-answer CLIP text tower: input_ids [B,77] int64 -> text_embeds [B,D]."""
    table = _text_table(tokenizer, embed_dim)
    ctx = tokenizer.context_length
    nodes = [
        _const("table", table),
        helper.make_node("Gather", ["table", "input_ids"], ["tok"], axis=0),  # [B,77,D]
        _const("ax1", [1], np.int64),
        helper.make_node("ReduceMax", ["tok", "ax1"], ["text_embeds"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "known_answer_clip_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", ctx])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["B", embed_dim])])
    return _save(graph, path)


def keyword_corpus() -> List[str]:
    """Words the known-answer merges make into single tokens."""
    words: List[str] = list(COLOUR_NAMES) + list(STOP_WORDS) + list(NEUTRAL_WORDS)
    for syn in SHAPE_WORDS.values():
        words.extend(syn)
    return [w for w in words if len(w) > 1 or w.isalpha()]


def vocabulary() -> FrozenSet[str]:
    """Every word the known-answer text tower gives a meaning (colours, shapes, generic and filler words).

    Any other word embeds as *other*, which no crop has: a phrase with one never matches.
    """
    return frozenset(keyword_corpus())


def unknown_words(text: str) -> List[str]:
    """Words of ``text`` outside :func:`vocabulary`, in order, each once."""
    known = vocabulary()
    out: List[str] = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word not in known and word not in out:
            out.append(word)
    return out


def make_known_answer_set(out_dir: Union[str, Path], input_size: int = 512, embed_dim: int = 16,
                          image_size: int = 64, context_length: int = 77) -> Path:
    """Write a complete known-answer model set.

    Args:
        out_dir: directory to create (or overwrite files in).
        input_size: SAM encoder input S (multiple of 64); low-res masks are S/4.
        embed_dim: CLIP embedding size D (>= 11: 6 colours, 3 shapes, neutral, other).
        image_size: CLIP crop size R.
        context_length: token sequence length.

    Returns:
        The model set directory, with ``manifest.json`` (kind ``known-answer``).
    """
    if input_size % 64 or input_size < 64:
        raise ValueError(f"input_size must be a positive multiple of 64, got {input_size}")
    if embed_dim < len(FEATURE_NAMES):
        raise ValueError(f"embed_dim must be >= {len(FEATURE_NAMES)}, got {embed_dim}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges_path = write_merges(out / "bpe_vocab.txt.gz", train_merges(keyword_corpus()))
    tokenizer = ClipTokenizer(merges_path, context_length)
    files: Dict[str, Path] = {
        "sam_encoder.onnx": make_sam_encoder(out / "sam_encoder.onnx", input_size),
        "sam_decoder.onnx": make_sam_decoder(out / "sam_decoder.onnx", input_size),
        "sam_decoder_window.onnx": make_sam_window_decoder(out / "sam_decoder_window.onnx", input_size),
        "clip_visual.onnx": make_clip_visual(out / "clip_visual.onnx", image_size, embed_dim),
        "clip_text.onnx": make_clip_text(out / "clip_text.onnx", tokenizer, embed_dim),
        "bpe_vocab.txt.gz": merges_path,
    }
    manifest = {
        "format": 1,
        "name": f"known-answer-s{input_size}-d{embed_dim}",
        "kind": "known-answer",
        "sam": {"encoder": "sam_encoder.onnx", "decoder": "sam_decoder.onnx",
                "decoder_window": "sam_decoder_window.onnx", "input_size": input_size,
                "embed_size": input_size // 16,
                "pixel_mean": SAM_PIXEL_MEAN, "pixel_std": SAM_PIXEL_STD},
        "clip": {"visual": "clip_visual.onnx", "text": "clip_text.onnx",
                 "image_size": image_size, "embed_dim": embed_dim, "context_length": context_length,
                 "mean": CLIP_MEAN, "std": CLIP_STD, "tokenizer": "bpe_vocab.txt.gz",
                 "logit_scale": 100.0},
        "files": {name: sha256_file(p) for name, p in sorted(files.items())},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def feature_names() -> Sequence[str]:
    """Names of the first embedding dimensions of the known-answer CLIP towers."""
    return tuple(FEATURE_NAMES)
