"""Export MobileSAM + TinyCLIP to the ONNX model set of docs/models.md.

``export_model_set`` builds the real architectures (TinyViT-5M from
:mod:`tinyvlm_ros.models.tinyvit`, SAM's prompt encoder and mask decoder from
segment-anything, TinyCLIP through open_clip with the registry's configs),
loads checkpoints when given or keeps seeded random weights when not (the
``random`` benchmark sets), writes the four graphs plus the windowed SAM
decoder (the same decoder on a window of the image embedding), optional int8
variants of the graphs where int8 is faster on CPU (SAM decoders, CLIP visual)
when they agree with fp32 on calibration images, the BPE vocabulary and
``manifest.json``, and checks every ONNX graph against torch on the same inputs.

torch, open_clip and segment-anything are the ``export`` extra: they are
imported inside the functions here, never by the runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tinyvlm_ros.models import checkpoint as checkpoints
from tinyvlm_ros.models import int8_check, registry

#: Input normalisation of SAM (pixel values 0-255) and OpenAI/open_clip CLIP (0-1).
SAM_PIXEL_MEAN = [123.675, 116.28, 103.53]
SAM_PIXEL_STD = [58.395, 57.12, 57.375]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

#: ONNX opset of every exported graph, and the IR version written (ORT reads <= 13; onnx 1.23 writes 14).
OPSET = 17
IR_VERSION = 10

#: Max abs ONNX-vs-torch difference allowed, relative to the largest reference magnitude (min 1).
FP32_TOLERANCE = 1e-3

#: Graphs that get an int8 variant: measured faster on CPU (decoder ~35 -> ~25 ms/prompt, CLIP-61M
#: visual ~33 -> ~15 ms/crop); the int8 encoder was slower and text runs once per phrase.
INT8_GRAPHS = ("sam_decoder", "sam_decoder_window", "clip_visual")

#: Window side (embedding cells) of the windowed decoder's export check; the graph takes any size.
WINDOW_CHECK_SIZE = 16

_KEEP_ALIVE: List[Any] = []  # torch.library handles must outlive the import they enable


class ExportCheckError(ValueError):
    """An exported graph disagrees with its torch module beyond the tolerance."""


def import_open_clip():
    """Import open_clip, working around PyPI torchvision builds whose C ops do not load.

    The torchvision wheel matching CPU torch 2.13 on PyPI is a CUDA build; its
    import dies registering fake kernels for ``torchvision::nms``/``qnms``
    because the C library that defines them failed to load.  open_clip and
    segment-anything only need torchvision's Python parts, so defining those
    two op schemas first lets the import finish.  Export-time only.
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError("export needs torch: pip install torch (CPU wheel), then open_clip_torch, "
                          "segment-anything --no-deps, timm") from exc
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP_ALIVE.append(lib)
        import torchvision  # noqa: F401,F811
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError(f"export needs open_clip_torch and torchvision ({exc}): "
                          "pip install open_clip_torch==3.3.0 torchvision --no-deps") from exc
    return open_clip


def import_segment_anything():
    """Import segment-anything's SAM modules (prompt encoder, mask decoder, two-way transformer)."""
    import_open_clip()  # same torchvision workaround
    try:
        from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    except ImportError as exc:
        raise ImportError(f"export needs segment-anything ({exc}): "
                          "pip install segment-anything --no-deps") from exc
    return Sam, PromptEncoder, MaskDecoder, TwoWayTransformer


def build_sam(sam_input: int = 1024, checkpoint: Optional[Path] = None):
    """Return MobileSAM (TinyViT-5M + SAM prompt encoder/decoder) in eval mode.

    Random weights from torch's default init when ``checkpoint`` is None.
    """
    from tinyvlm_ros.models.tinyvit import TinyViT

    Sam, PromptEncoder, MaskDecoder, TwoWayTransformer = import_segment_anything()
    if sam_input % 64:
        raise ValueError(f"--sam-input must be a multiple of 64, got {sam_input}")
    e = sam_input // 16
    sam = Sam(
        image_encoder=TinyViT(img_size=sam_input),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(e, e),
                                     input_image_size=(sam_input, sam_input), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048,
                                                               num_heads=8),
                                 transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=SAM_PIXEL_MEAN, pixel_std=SAM_PIXEL_STD)
    if checkpoint is not None:
        path = Path(checkpoint)
        # attention_bias_idxs is derived from the window size; older TinyViT code saved it.
        checkpoints.strict_load(sam, checkpoints.sam_state_dict(checkpoints.load_tensors(path)), path,
                                ("attention_bias_idxs",), hint="--sam takes MobileSAM's mobile_sam.pt")
    return sam.eval()


def build_clip(clip: str = "61m-32", checkpoint: Optional[Path] = None):
    """Return (open_clip model in eval mode, registry spec) for a TinyCLIP variant."""
    open_clip = import_open_clip()
    spec = registry.resolve(clip)
    cfg = registry.clip_config(spec)
    if spec.open_clip_name not in open_clip.list_models():
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = Path(tmp) / f"{spec.open_clip_name}.json"
            cfg_path.write_text(json.dumps(cfg))
            open_clip.add_model_config(cfg_path)
    model = open_clip.create_model(spec.open_clip_name, pretrained=None, device="cpu")
    if checkpoint is not None:
        path = Path(checkpoint)
        state = checkpoints.clip_state_dict(checkpoints.load_tensors(path), path)
        # attn_mask is the causal mask open_clip derives from the context length; older versions saved it.
        checkpoints.strict_load(model, state, path, ("attn_mask",),
                                hint=f"--clip-ckpt takes the TinyCLIP {spec.name} checkpoint (--clip names "
                                     "the variant); the layouts read are listed in docs/model_tools.md")
    return model.eval(), spec


class _Wrappers:
    """torch modules with exactly the docs/models.md inputs and outputs (built lazily: torch needed)."""

    @staticmethod
    def make():
        import torch
        from torch import nn

        class SamEncoder(nn.Module):
            def __init__(self, sam):
                super().__init__()
                self.encoder = sam.image_encoder

            def forward(self, image):
                return self.encoder(image)

        class SamDecoder(nn.Module):
            # Like segment-anything's SamOnnxModel, but stops at the low-res logits: the host
            # upsamples only the masks that win.
            def __init__(self, sam):
                super().__init__()
                self.prompt_encoder = sam.prompt_encoder
                self.mask_decoder = sam.mask_decoder
                self.img_size = sam.image_encoder.img_size

            def _embed_points(self, coords, labels):
                coords = (coords + 0.5) / self.img_size
                emb = self.prompt_encoder.pe_layer._pe_encoding(coords)
                lab = labels.unsqueeze(-1).expand_as(emb)
                emb = emb * (lab != -1)
                emb = emb + self.prompt_encoder.not_a_point_embed.weight * (lab == -1)
                for i in range(self.prompt_encoder.num_point_embeddings):
                    emb = emb + self.prompt_encoder.point_embeddings[i].weight * (lab == i)
                return emb

            def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
                sparse = self._embed_points(point_coords, point_labels)
                dense = has_mask_input * self.prompt_encoder.mask_downscaling(mask_input)
                dense = dense + (1 - has_mask_input) * self.prompt_encoder.no_mask_embed.weight.reshape(
                    1, -1, 1, 1)
                masks, iou = self.mask_decoder.predict_masks(
                    image_embeddings=image_embeddings, image_pe=self.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
                return masks[:, 1:, :, :], iou[:, 1:]  # the three multimask outputs

        class SamWindowDecoder(SamDecoder):
            # The same mask decoder on a window of the image embedding.  The two-way transformer and
            # the upscaling work on any token grid, and image tokens are updated position by position,
            # so a window differs from the full grid only in what the prompt tokens' attention to the
            # image can see.  The window's dense positional encoding is computed here from its origin,
            # on the grid SAM's get_dense_pe uses (cell centres / E), so the host needs no SAM internals.
            def forward(self, image_embeddings, window_origin, point_coords, point_labels):
                sparse = self._embed_points(point_coords, point_labels)
                b, c, h, w = image_embeddings.shape
                e = float(self.prompt_encoder.image_embedding_size[0])
                xs = (window_origin[:, 0:1] + torch.arange(w, dtype=torch.float32) + 0.5) / e  # [B,w]
                ys = (window_origin[:, 1:2] + torch.arange(h, dtype=torch.float32) + 0.5) / e  # [B,h]
                grid = torch.stack([xs.unsqueeze(1).expand(b, h, w), ys.unsqueeze(2).expand(b, h, w)], -1)
                pe = self.prompt_encoder.pe_layer._pe_encoding(grid).permute(0, 3, 1, 2)
                src = image_embeddings + self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
                md = self.mask_decoder
                out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], 0)
                tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], 1)
                hs, src = md.transformer(src, pe, tokens)
                up = md.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
                hyper = torch.stack([md.output_hypernetworks_mlps[i](hs[:, 1 + i])
                                     for i in range(md.num_mask_tokens)], 1)
                masks = torch.matmul(hyper, up.flatten(2)).reshape(b, md.num_mask_tokens, 4 * h, 4 * w)
                iou = md.iou_prediction_head(hs[:, 0])
                return masks[:, 1:], iou[:, 1:]

        class ClipVisual(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, pixel_values):
                return self.model.encode_image(pixel_values)

        class ClipText(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids):
                return self.model.encode_text(input_ids)

        return torch, SamEncoder, SamDecoder, SamWindowDecoder, ClipVisual, ClipText


def _export_graph(torch, module, args: tuple, path: Path, input_names: List[str], output_names: List[str],
                  dynamic_axes: Dict[str, Dict[int, str]]) -> None:
    import onnx

    import warnings

    # The legacy (TorchScript) exporter: it gave faster SAM graphs here, and only its decoder quantized.
    # Its tracer warnings concern Python branches on shapes that are constant per graph (E, window sizes).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False, verbose=False)
    model = onnx.load(str(path))
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))


def _check_graph(torch, module, args: tuple, path: Path, input_names: List[str],
                 tolerance: Optional[float], log) -> float:
    """Run the ONNX graph and the torch module on ``args``; return the max abs diff over outputs."""
    import onnxruntime as ort

    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, tuple) else (ref,)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: a.numpy() for n, a in zip(input_names, args)}
    outs = sess.run(None, feeds)
    worst, scale = 0.0, 1.0
    for r, o in zip(ref, outs):
        r = r.numpy()
        if r.shape != o.shape:
            raise ExportCheckError(f"{path.name}: ONNX output shape {o.shape} != torch {r.shape}")
        worst = max(worst, float(np.max(np.abs(r - o))))
        scale = max(scale, float(np.max(np.abs(r))))
    log(f"  check {path.name}: max abs diff vs torch {worst:.2e} (outputs up to {scale:.2e})")
    if tolerance is not None and worst > tolerance * scale:
        raise ExportCheckError(f"{path.name}: ONNX differs from torch by {worst:.3g} "
                               f"(> {tolerance:g} x {scale:.3g}); the export is wrong, do not use it")
    return worst


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    import onnx

    model = onnx.load(str(dst))
    model.ir_version = IR_VERSION
    onnx.save(model, str(dst))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_model_set(out_dir: os.PathLike, *, sam_ckpt: Optional[os.PathLike] = None, clip: str = "61m-32",
                     clip_ckpt: Optional[os.PathLike] = None, sam_input: int = 1024, int8: bool = False,
                     check: bool = True, random_seed: Optional[int] = None, quiet: bool = False,
                     calibration: Optional[Tuple[List[np.ndarray], str]] = None,
                     int8_bounds: Optional[Dict[str, Dict[str, float]]] = None,
                     kind: Optional[str] = None) -> Path:
    """Write a model set (docs/models.md) to ``out_dir`` and return its path.

    Args:
        out_dir: directory to create or overwrite the model files in.
        sam_ckpt: MobileSAM checkpoint (``mobile_sam.pt``).
        clip: TinyCLIP registry name or alias ("61m-32").
        clip_ckpt: TinyCLIP checkpoint for ``clip``.
        sam_input: SAM encoder input size S (embedding E = S/16).
        int8: also write int8 SAM decoder and CLIP visual graphs, measure each against its fp32
            twin on calibration images, and use the ones whose agreement meets the bounds
            (:mod:`tinyvlm_ros.models.int8_check`); the manifest's ``int8`` entry records it.
        check: compare every fp32 graph with torch and raise :class:`ExportCheckError` above
            :data:`FP32_TOLERANCE`.
        calibration: (images, description) for the int8 check; default: the package's photos,
            else generated scenes.
        int8_bounds: per graph, per metric minimum agreement (default ``int8_check.INT8_BOUNDS``).
        kind: the manifest's weights kind; default "real" with checkpoints, "random" without.  Give
            "random" for checkpoints of untrained weights (the fidelity report exports those).
        random_seed: with no checkpoints, seed of the random weights (kind "random").
        quiet: no progress lines.

    A real export needs both checkpoints; with neither, the set is ``random``.
    """
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if (sam_ckpt is None) != (clip_ckpt is None):
        raise ValueError("give both --sam and --clip-ckpt for a real export (or neither, with "
                         "`make-test --random`, for random weights)")
    if kind is None:
        kind = "real" if sam_ckpt is not None else "random"
    elif kind not in ("real", "random"):
        raise ValueError(f"an exported set is of kind real or random, not {kind!r}")
    for ckpt in (sam_ckpt, clip_ckpt):
        if ckpt is not None and not Path(ckpt).is_file():
            raise FileNotFoundError(f"checkpoint {ckpt} not found; `tinyvlm models fetch` downloads it")

    torch, SamEncoder, SamDecoder, SamWindowDecoder, ClipVisual, ClipText = _Wrappers.make()
    # nn.MultiheadAttention's eval fast path is a fused op the ONNX exporter cannot translate.
    torch.backends.mha.set_fastpath_enabled(False)
    seed = 0 if random_seed is None else random_seed
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.onnx"):
        stale.unlink()  # a set is all-or-nothing: never mix graphs of two exports
    tol = FP32_TOLERANCE if check else None

    log(f"building MobileSAM (input {sam_input}) and TinyCLIP {clip} ({kind} weights)")
    sam = build_sam(sam_input, Path(sam_ckpt) if sam_ckpt else None)
    clip_model, spec = build_clip(clip, Path(clip_ckpt) if clip_ckpt else None)
    cfg = registry.clip_config(spec)
    e = sam_input // 16
    image_size = cfg["vision_cfg"]["image_size"]
    ctx = cfg["text_cfg"]["context_length"]
    diffs: Dict[str, float] = {}

    gen = torch.Generator().manual_seed(seed + 1)
    enc = SamEncoder(sam).eval()
    image = torch.randn(1, 3, sam_input, sam_input, generator=gen)
    path = out / "sam_encoder.onnx"
    log(f"exporting {path.name}")
    _export_graph(torch, enc, (image,), path, ["image"], ["image_embeddings"], {})
    if check:
        diffs[path.name] = _check_graph(torch, enc, (image,), path, ["image"], tol, log)
    with torch.no_grad():
        emb = enc(image)

    dec = SamDecoder(sam).eval()
    b, n = 3, 2
    dec_args = (emb,
                torch.rand(b, n, 2, generator=gen) * sam_input,
                torch.tensor([[1.0, -1.0], [1.0, 0.0], [1.0, 1.0]]),
                torch.zeros(b, 1, 4 * e, 4 * e),
                torch.zeros(1))
    dec_in = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
    path = out / "sam_decoder.onnx"
    log(f"exporting {path.name}")
    _export_graph(torch, dec, dec_args, path, dec_in, ["low_res_masks", "iou_predictions"],
                  {"point_coords": {0: "B", 1: "N"}, "point_labels": {0: "B", 1: "N"},
                   "mask_input": {0: "B"}, "low_res_masks": {0: "B"}, "iou_predictions": {0: "B"}})
    if check:
        diffs[path.name] = _check_graph(torch, dec, dec_args, path, dec_in, tol, log)
        # A different batch and prompt count through the same graph: the axes really are dynamic.
        alt = (emb, torch.rand(5, 1, 2, generator=gen) * sam_input, torch.ones(5, 1),
               torch.randn(5, 1, 4 * e, 4 * e, generator=gen), torch.ones(1))
        diffs[path.name] = max(diffs[path.name], _check_graph(torch, dec, alt, path, dec_in, tol, log))

    win = SamWindowDecoder(sam).eval()
    w = min(WINDOW_CHECK_SIZE, e)
    origin = torch.tensor([[0.0, 0.0], [e - w, 3.0], [5.0, e - w]])
    win_emb = torch.stack([emb[0, :, int(oy):int(oy) + w, int(ox):int(ox) + w] for ox, oy in origin.tolist()])
    win_args = (win_emb, origin, dec_args[1], dec_args[2])
    win_in = ["image_embeddings", "window_origin", "point_coords", "point_labels"]
    path = out / "sam_decoder_window.onnx"
    log(f"exporting {path.name}")
    _export_graph(torch, win, win_args, path, win_in, ["low_res_masks", "iou_predictions"],
                  {"image_embeddings": {0: "B", 2: "H", 3: "W"}, "window_origin": {0: "B"},
                   "point_coords": {0: "B", 1: "N"}, "point_labels": {0: "B", 1: "N"},
                   "low_res_masks": {0: "B", 2: "H4", 3: "W4"}, "iou_predictions": {0: "B"}})
    if check:
        diffs[path.name] = _check_graph(torch, win, win_args, path, win_in, tol, log)
        # The whole grid as one window is the full decoder: same positional encoding, same tokens.
        whole = (emb.expand(3, -1, -1, -1).contiguous(), torch.zeros(3, 2), dec_args[1], dec_args[2])
        no_mask = (torch.zeros(3, 1, 4 * e, 4 * e), torch.zeros(1))
        diffs[path.name] = max(diffs[path.name], _check_graph(
            torch, lambda im, _o, pc, pl: dec(emb, pc, pl, *no_mask), whole, path, win_in, tol, log))

    vis = ClipVisual(clip_model).eval()
    pix = torch.randn(2, 3, image_size, image_size, generator=gen)
    path = out / "clip_visual.onnx"
    log(f"exporting {path.name}")
    _export_graph(torch, vis, (pix,), path, ["pixel_values"], ["image_embeds"],
                  {"pixel_values": {0: "B"}, "image_embeds": {0: "B"}})
    if check:
        diffs[path.name] = _check_graph(torch, vis, (pix,), path, ["pixel_values"], tol, log)

    txt = ClipText(clip_model).eval()
    ids = torch.zeros(2, ctx, dtype=torch.long)
    ids[0, :4] = torch.tensor([49406, 320, 1929, 49407])  # BOS "a" "photo" EOS
    ids[1, :3] = torch.tensor([49406, 3095, 49407])
    path = out / "clip_text.onnx"
    log(f"exporting {path.name}")
    _export_graph(torch, txt, (ids,), path, ["input_ids"], ["text_embeds"],
                  {"input_ids": {0: "B"}, "text_embeds": {0: "B"}})
    if check:
        diffs[path.name] = _check_graph(torch, txt, (ids,), path, ["input_ids"], tol, log)

    files = {"sam_encoder": "sam_encoder.onnx", "sam_decoder": "sam_decoder.onnx",
             "sam_decoder_window": "sam_decoder_window.onnx",
             "clip_visual": "clip_visual.onnx", "clip_text": "clip_text.onnx"}
    open_clip = import_open_clip()
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    shutil.copyfile(vocab, out / "bpe_vocab.txt.gz")
    sam_fields = {"input_size": sam_input, "embed_size": e, "pixel_mean": SAM_PIXEL_MEAN,
                  "pixel_std": SAM_PIXEL_STD}
    clip_fields = {"image_size": image_size, "embed_dim": cfg["embed_dim"], "context_length": ctx,
                   "mean": CLIP_MEAN, "std": CLIP_STD, "tokenizer": "bpe_vocab.txt.gz"}

    int8_report: Optional[Dict[str, dict]] = None
    if int8:
        q_modules = {"sam_decoder": (dec, dec_args, dec_in), "sam_decoder_window": (win, win_args, win_in),
                     "clip_visual": (vis, (pix,), ["pixel_values"])}
        for graph in INT8_GRAPHS:
            src, dst = out / files[graph], out / files[graph].replace(".onnx", ".int8.onnx")
            log(f"quantizing {dst.name}")
            _quantize(src, dst)
            module, args, names = q_modules[graph]
            diffs[dst.name] = _check_graph(torch, module, args, dst, names, None, log)
        images, described = calibration if calibration is not None else int8_check.default_calibration()
        log(f"measuring int8 against fp32 on {described}")
        files, int8_report = int8_check.check_int8(out, files, images, described, sam=sam_fields,
                                                   clip=clip_fields, bounds=int8_bounds, log=log)

    logit_scale = 100.0
    if clip_ckpt is not None:
        logit_scale = float(clip_model.logit_scale.exp().item())
    sam_name = "mobilesam" if sam_input == 1024 else f"mobilesam-{sam_input}"
    manifest = {
        "format": 1,
        "name": f"{sam_name}+{spec.name}",
        "kind": kind,
        "sam": {"encoder": files["sam_encoder"], "decoder": files["sam_decoder"],
                "decoder_window": files["sam_decoder_window"], **sam_fields},
        "clip": {"visual": files["clip_visual"], "text": files["clip_text"], **clip_fields,
                 "logit_scale": logit_scale},
        "files": {p.name: _sha256(p) for p in sorted(out.iterdir())
                  if p.suffix in (".onnx", ".gz")},
        "source": {
            "sam": str(Path(sam_ckpt).name) if sam_ckpt else f"random weights, seed {seed}",
            "clip": f"{spec.name} ({spec.open_clip_name}) "
                    + (str(Path(clip_ckpt).name) if clip_ckpt else f"random weights, seed {seed}"),
            "exporter": f"torch {torch.__version__} legacy ONNX exporter, opset {OPSET}, IR {IR_VERSION}",
            "max_abs_diff_vs_torch": diffs,
        },
    }
    if int8_report is not None:
        manifest["int8"] = int8_report
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out
