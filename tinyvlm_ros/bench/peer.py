"""The stock recipe the pipeline benchmark compares against, in PyTorch.

segment-anything's ``SamAutomaticMaskGenerator`` (a ``points_per_side`` grid,
its default filters) running MobileSAM's architecture - the package's TinyViT
encoder with segment-anything's prompt encoder and mask decoder, built as
:func:`tinyvlm_ros.models.export.build_sam` builds it for export - then open_clip's
TinyCLIP scoring every mask's crop against the command's phrase, all in
PyTorch with a fixed number of threads.  This is what a user gets by gluing
the upstream packages together, and what our ONNX pipeline must beat.

Only the export extra needs it (torch, open_clip, segment-anything); weights
are random unless checkpoints are given, so with a random model set the
decoder's output values are replaced by the same region oracle as ours
(:class:`tinyvlm_ros.bench.workload.Oracle`): the decoder still runs on every
prompt, and masks, filters, upsampling, crops and CLIP cost what they cost.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import numpy as np

from tinyvlm_ros.bench.workload import Oracle

#: The caption every crop is scored against (the same template as our matcher's).
TEMPLATE = "a photo of a {}."


def _batched_nms(boxes, scores, idxs, iou_threshold):
    """Do torchvision's ``batched_nms`` (per-class greedy NMS) with our box NMS: the same kept boxes.

    The generator removes duplicates with torchvision's NMS, whose compiled op
    does not load from PyPI's torchvision wheel for the CPU torch (a CUDA
    build; see :func:`tinyvlm_ros.models.export.import_open_clip`).
    """
    import torch

    from tinyvlm_ros.engine.segmenter import box_nms

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    # the usual trick: shift each class's boxes apart so boxes of two classes never overlap
    offsets = idxs.to(boxes.dtype) * (boxes.max() + 1)
    shifted = (boxes + offsets[:, None]).detach().cpu().numpy().astype(np.float64)
    keep = box_nms(shifted, scores.detach().cpu().numpy().astype(np.float64), float(iou_threshold))
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


class StockRecipe:
    """MobileSAM automatic masks + TinyCLIP crop scoring, as upstream's packages do it.

    Args:
        sam_input: SAM's input side (1024 for MobileSAM as trained; 512 for the reduced variant).
        clip: TinyCLIP registry name ("61m-32", "8m-16", ...).
        threads: torch intra-op threads.
        points_per_side: the automatic generator's grid (16 as measured in issue 13; its default is 32).
        oracle: replace the decoder's output values with these regions (random weights).
        seed: seed of the random weights.
    """

    def __init__(self, sam_input: int, clip: str, threads: int = 2, points_per_side: int = 16,
                 oracle: Optional[Oracle] = None, seed: int = 0) -> None:
        from tinyvlm_ros.models.export import build_clip, build_sam, import_open_clip, import_segment_anything

        import torch

        import_segment_anything()
        open_clip = import_open_clip()
        import segment_anything.automatic_mask_generator as amg
        import torchvision.extension

        if not torchvision.extension._has_ops():
            amg.batched_nms = _batched_nms

        self.torch = torch
        self.threads = int(threads)
        torch.manual_seed(seed)
        self.sam = build_sam(sam_input)
        self.clip, spec = build_clip(clip)
        self.clip_name = spec.name
        self.tokenizer = open_clip.get_tokenizer(spec.open_clip_name)
        size = self.clip.visual.image_size
        size = size if isinstance(size, int) else size[0]
        self.preprocess = open_clip.image_transform(size, is_train=False)
        self.generator = amg.SamAutomaticMaskGenerator(self.sam, points_per_side=points_per_side)
        self.points_per_side = points_per_side
        self._timings: Dict[str, float] = {}
        predictor = self.generator.predictor
        set_image = predictor.set_image

        def timed_set_image(*args, **kwargs):
            t = time.perf_counter()
            out = set_image(*args, **kwargs)
            self._timings["encoder"] = self._timings.get("encoder", 0.0) + time.perf_counter() - t
            return out

        predictor.set_image = timed_set_image
        self.prompts = 0
        if oracle is not None:
            self._install_oracle(oracle)

    def _install_oracle(self, oracle: Oracle) -> None:
        """Answer the decoder with ``oracle``'s regions for the prompts predict_torch was given."""
        torch = self.torch
        predictor = self.generator.predictor
        decoder = self.sam.mask_decoder
        predict, decode = predictor.predict_torch, decoder.forward
        current: Dict[str, Any] = {}

        def predict_torch(point_coords, point_labels, *args, **kwargs):
            current["points"] = point_coords[:, 0, :].detach().cpu().numpy()  # S-frame (x, y)
            self.prompts += len(current["points"])
            return predict(point_coords, point_labels, *args, **kwargs)

        def forward(*args, **kwargs):
            masks, iou = decode(*args, **kwargs)
            if not oracle.active:
                return masks, iou
            m, q = oracle.decode(current["points"])
            return torch.from_numpy(m).to(masks.dtype), torch.from_numpy(q).to(iou.dtype)

        predictor.predict_torch = predict_torch
        decoder.forward = forward

    def run(self, image: np.ndarray, phrase: str) -> Dict[str, Any]:
        """Masks for an HxWx3 uint8 RGB frame, every crop scored against ``phrase``; the best box wins.

        Returns:
            ``{"box", "score", "masks", "crops", "prompts", "timings"}`` (timings per stage in seconds).
        """
        from PIL import Image

        torch = self.torch
        torch.set_num_threads(self.threads)
        self._timings = {}
        self.prompts = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            records = self.generator.generate(image)
            t1 = time.perf_counter()
            self._timings["masks"] = t1 - t0 - self._timings.get("encoder", 0.0)
            crops, boxes = [], []
            for r in records:
                x, y, w, h = (int(v) for v in r["bbox"])
                if w < 1 or h < 1:
                    continue
                crop = image[y:y + h, x:x + w].copy()
                crop[~r["segmentation"][y:y + h, x:x + w]] = 0  # the usual SAM+CLIP recipe: mask on black
                crops.append(self.preprocess(Image.fromarray(crop)))
                boxes.append((float(x), float(y), float(x + w), float(y + h)))
            t2 = time.perf_counter()
            self._timings["crops"] = t2 - t1
            box, score = None, None
            if crops:
                img = self.clip.encode_image(torch.stack(crops))
                t3 = time.perf_counter()
                txt = self.clip.encode_text(self.tokenizer([TEMPLATE.format(phrase)]))
                img = img / img.norm(dim=-1, keepdim=True)
                txt = txt / txt.norm(dim=-1, keepdim=True)
                sims = (img @ txt.T)[:, 0]
                best = int(torch.argmax(sims))
                box, score = boxes[best], float(sims[best])
                self._timings["visual"] = t3 - t2
                self._timings["text"] = time.perf_counter() - t3
        self._timings["total"] = time.perf_counter() - t0
        return {"box": box, "score": score, "masks": len(records), "crops": len(crops),
                "prompts": self.prompts,
                "timings": dict(self._timings)}
