"""Matryoshka distillation of the MCU's region encoder from a CLIP-interface teacher.

``tinyvlm mcu distill --teacher MODEL_DIR (--images DIR | --generate N) --out DIR`` builds the
training set (:mod:`tinyvlm_ros.distill.data`), trains :class:`~tinyvlm_ros.distill.student.Student`
(the firmware's architecture) and a :class:`~tinyvlm_ros.distill.student.TextProjection`, then
quantizes stage by stage (:mod:`tinyvlm_ros.distill.quantize`) and exports the firmware blob plus the
numpy text projection (:mod:`tinyvlm_ros.mcu.trained_model` reads them at run time, without torch).

The loss (:func:`tinyvlm_ros.distill.objective.matryoshka_loss`), for every prefix length m of
``--dims``: cosine and region-to-region contrastive distillation towards the projected teacher
region embeddings, a detection term on the *seen* phrases only (:mod:`tinyvlm_ros.distill.split`)
and a structure term on the projection.  With the attribute teacher
(:mod:`tinyvlm_ros.testing.attribute_models`) the scenes show objects that no training phrase names.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.distill.objective import matryoshka_loss, region_accuracy

DEFAULT_DIMS = (16, 32, 64, 128)
CHECKPOINT = "checkpoint.pt"
DATA = "data.npz"
HISTORY = "history.json"
CURVES = "curves.png"


def parse_dims(text: str, embed_dim: int = 128) -> List[int]:
    """Parse "16,32,64,128" into [16, 32, 64, 128]; each a multiple of 4 up to ``embed_dim``, increasing."""
    try:
        dims = [int(d) for d in str(text).split(",") if d.strip()]
    except ValueError:
        raise ValueError(f"--dims must be comma-separated integers, got {text!r}") from None
    if not dims or any(d <= 0 or d % 4 or d > embed_dim for d in dims) or dims != sorted(set(dims)):
        raise ValueError(f"--dims must be increasing multiples of 4 up to {embed_dim}, got {text!r}")
    return dims


# ---------------------------------------------------------------------------------------------- data
def world_of(teacher_dir: Path) -> str:
    """Scene world of a teacher: ``attributes`` for the attribute teacher, ``basic`` otherwise."""
    from tinyvlm_ros.testing.attribute_models import is_attribute_set

    return "attributes" if is_attribute_set(teacher_dir) else "basic"


def make_teacher(kind: str, teacher_dir: Path) -> Path:
    """Write a generated teacher model set: ``attributes`` or ``known-answer``."""
    if kind == "attributes":
        from tinyvlm_ros.testing.attribute_models import make_attribute_set

        return make_attribute_set(teacher_dir)
    if kind == "known-answer":
        from tinyvlm_ros.testing.models import make_known_answer_set

        return make_known_answer_set(teacher_dir)
    raise ValueError(f"--make-teacher must be attributes or known-answer, got {kind!r}")


def build_dataset(teacher_dir: Path, out: Path, generate: int = 0, images: Optional[Path] = None,
                  seed: int = 0, val_fraction: float = 0.1, in_size=(96, 96), grid=(12, 12),
                  progress: bool = True, scene_size=(640, 480)) -> Dict[str, np.ndarray]:
    """Make (or reuse) ``out/data.npz``: frames, region targets, coverage, labels, seen-phrase embeddings.

    Generated scenes (seeds ``seed * 100000 + i``) come from the teacher's world
    (:func:`world_of`): :func:`~tinyvlm_ros.testing.scenes.make_scene` with 2 to 4 objects, or
    :func:`~tinyvlm_ros.testing.scenes.make_attribute_scene` with 3 to 6; image files are read from
    ``images``; ``scene_size`` is the generated frames' (width, height) (the MCU sees them at ``in_size``
    anyway; smaller frames are quicker to make).  Only seen phrases
    (:func:`tinyvlm_ros.distill.split.seen_phrases`) are embedded and
    named.  The last ``val_fraction`` is held out.
    """
    from tqdm import tqdm

    from tinyvlm_ros.distill.data import (Teacher, image_sample, load_rgb, read_images, scene_sample,
                                          stack)
    from tinyvlm_ros.distill.split import seen_phrases
    from tinyvlm_ros.testing.scenes import make_attribute_scene, make_scene

    path = out / DATA
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if (int(data["n_generated"]) == generate and str(data["images"]) == str(images or "")
                and "phrase_cover" in data and str(data.get("world", "")) == world_of(teacher_dir)):
            return data
    if generate <= 0 and images is None:
        raise ValueError("give --images DIR or --generate N (or both)")
    teacher = Teacher(teacher_dir)
    world = world_of(teacher_dir)
    phrases = seen_phrases(world)
    samples = []
    files = read_images(images) if images else []
    jobs = [("scene", i) for i in range(generate)] + [("file", p) for p in files]
    rng = np.random.default_rng(seed)
    for kind, item in tqdm(jobs, desc="teacher targets", disable=not progress, leave=False):
        if kind == "scene":
            if world == "attributes":
                scene = make_attribute_scene(seed=seed * 100000 + int(item), width=scene_size[0],
                                             height=scene_size[1], n_objects=int(rng.integers(3, 7)))
            else:
                scene = make_scene(seed=seed * 100000 + int(item), width=scene_size[0], height=scene_size[1],
                                   n_objects=int(rng.integers(2, 5)))
            samples.append(scene_sample(teacher, scene, in_size, grid, phrases))
        else:
            samples.append(image_sample(teacher, load_rgb(item), in_size, grid, len(phrases)))
    data = stack(samples)
    n_val = max(1, int(round(len(samples) * val_fraction))) if len(samples) > 1 else 0
    data["is_val"] = np.arange(len(samples)) >= len(samples) - n_val
    data["text"] = teacher.embed_phrases(phrases)
    data["phrases"] = np.array(phrases)
    data["world"] = np.array(world)
    data["n_generated"] = np.array(generate)
    data["images"] = np.array(str(images or ""))
    data["teacher_dim"] = np.array(teacher.dim)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


# ---------------------------------------------------------------------------------------------- train
def save_curves(history: List[Dict[str, float]], dims: Sequence[int], path: Path) -> None:
    """Loss and student-teacher cosine (per prefix, held-out frames) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].plot(ep, [h["loss"] for h in history], label="train")
    ax[0].plot(ep, [h["val_loss"] for h in history], label="held out")
    ax[0].set_title("Matryoshka loss (sum over prefixes)")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    for m in dims:
        ax[1].plot(ep, [h[f"val_cos@{m}"] for h in history], label=f"{m} dims")
        ax[2].plot(ep, [h[f"val_acc@{m}"] for h in history], label=f"{m} dims")
    ax[1].set_title("student-teacher cosine (held out)")
    ax[2].set_title("region top-1 over the seen phrases (held-out frames)")
    for a in ax[1:]:
        a.set_xlabel("epoch")
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(data: Dict[str, np.ndarray], out: Path, dims: Sequence[int], epochs: int, batch: int = 32,
          lr: float = 3e-3, seed: int = 0, resume: bool = False, progress: bool = True,
          threads: int = 1):
    """Train student and projection; checkpoint every epoch; return (student, proj, history).

    With ``resume`` the last checkpoint in ``out`` (if any) is continued up to ``epochs`` in all.
    """
    import torch
    from tqdm import tqdm

    from tinyvlm_ros.distill.student import Student, TextProjection, images_to_tensor

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    student = Student()
    proj = TextProjection(int(data["teacher_dim"]), student.embed_dim, seed=seed)
    params = list(student.parameters()) + list(proj.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    history: List[Dict[str, float]] = []
    start = 0
    ckpt = out / CHECKPOINT
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        student.load_state_dict(state["student"])
        proj.load_state_dict(state["proj"])
        opt.load_state_dict(state["opt"])
        start = int(state["epoch"])
        history = json.loads((out / HISTORY).read_text()) if (out / HISTORY).exists() else []
    train_idx = np.nonzero(~data["is_val"])[0]
    val_idx = np.nonzero(data["is_val"])[0]
    if len(val_idx) == 0:
        val_idx = train_idx
    text = torch.from_numpy(data["text"]).float()

    def tensors(idx: np.ndarray, flip: bool = False):
        img, tgt, cov = data["image"][idx], data["target"][idx], data["cover"][idx]
        pc = data["phrase_cover"][idx]
        if flip:  # mirrored scenes are as valid as the originals: every shape and pattern is symmetric
            img, tgt, cov, pc = img[:, :, ::-1], tgt[:, :, ::-1], cov[:, :, ::-1], pc[:, :, ::-1]
        return (images_to_tensor(img), torch.from_numpy(np.ascontiguousarray(tgt)).float(),
                torch.from_numpy(np.ascontiguousarray(cov)).float(),
                torch.from_numpy(np.ascontiguousarray(pc).astype(np.float32)))

    rng = np.random.default_rng(seed + start)
    total_steps = max(1, epochs * math.ceil(len(train_idx) / batch))
    bar = tqdm(range(start, epochs), desc="distill", disable=not progress, initial=start, total=epochs)
    for epoch in bar:
        student.train()
        order = rng.permutation(train_idx)
        losses = []
        for i in range(0, len(order), batch):
            step = epoch * math.ceil(len(train_idx) / batch) + i // batch
            for g in opt.param_groups:  # cosine decay: large steps early, settle at the end
                g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total_steps)))
            x, t, c, pc = tensors(order[i:i + batch], flip=bool(rng.integers(2)))
            loss, _ = matryoshka_loss(student(x), t, c, text, proj, dims, pc)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        rec.update(evaluate(student, proj, data, val_idx, dims))
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", cos=f"{rec[f'val_cos@{dims[-1]}']:.3f}",
                        acc=f"{rec[f'val_acc@{dims[-1]}']:.2f}")
        torch.save({"student": student.state_dict(), "proj": proj.state_dict(), "opt": opt.state_dict(),
                    "epoch": epoch + 1, "dims": list(dims)}, ckpt)
        (out / HISTORY).write_text(json.dumps(history, indent=1))
    if history:
        save_curves(history, dims, out / CURVES)
    return student, proj, history


def evaluate(student, proj, data: Dict[str, np.ndarray], idx: np.ndarray, dims: Sequence[int]) -> Dict:
    """Held-out loss, student-teacher cosine and region accuracy per prefix (float model)."""
    import torch

    from tinyvlm_ros.distill.student import images_to_tensor

    student.eval()
    with torch.no_grad():
        x = images_to_tensor(data["image"][idx])
        t = torch.from_numpy(data["target"][idx]).float()
        c = torch.from_numpy(data["cover"][idx]).float()
        pc = torch.from_numpy(data["phrase_cover"][idx].astype(np.float32))
        text = torch.from_numpy(data["text"]).float()
        torch.manual_seed(0)
        out = student(x)
        loss, parts = matryoshka_loss(out, t, c, text, proj, dims, pc)
        emb = out.permute(0, 2, 3, 1).numpy()
        rows = proj(text).numpy()
    rec = {"val_loss": float(loss)}
    for m in dims:
        rec[f"val_cos@{m}"] = parts[f"cos@{m}"]
        rec[f"val_acc@{m}"] = region_accuracy(emb, rows, data["label"][idx], m)
    return rec


# ---------------------------------------------------------------------------------------------- CLI
def run(args: argparse.Namespace) -> int:
    """Distill, quantize and export as the CLI arguments say; print a summary."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dims = parse_dims(args.dims)
    if dims[-1] != 128:
        raise ValueError(f"the last prefix must be the full embedding (128), got {dims[-1]}")
    t0 = time.monotonic()
    if args.make_teacher and not (Path(args.teacher) / "manifest.json").exists():
        make_teacher(args.make_teacher, Path(args.teacher))
    data = build_dataset(Path(args.teacher), out, generate=args.generate,
                         images=Path(args.images) if args.images else None, seed=args.seed,
                         progress=not args.quiet)
    student, proj, history = train(data, out, dims, args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                                   resume=args.resume, progress=not args.quiet, threads=args.threads)
    from tinyvlm_ros.distill.quantize import export_distilled

    report = export_distilled(student, proj, data, out, dims, Path(args.teacher),
                              default_dim=args.default_dim, history=history)
    report["seconds"] = round(time.monotonic() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("prefix", "model_bytes", "seconds")}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``distill`` to the ``tinyvlm mcu`` subcommands."""
    p = subparsers.add_parser("distill", help="train, quantize and export the MCU image encoder")
    p.add_argument("--teacher", required=True, help="model set with CLIP's ONNX interface (manifest.json)")
    p.add_argument("--make-teacher", nargs="?", const="known-answer", default="",
                   choices=["attributes", "known-answer"],
                   help="write a generated teacher into --teacher first when it has no manifest: "
                        "attributes (composing words, held-out split) or known-answer (default)")
    p.add_argument("--images", help="directory of PNG/JPEG training images (regions from a 2x2-cell window)")
    p.add_argument("--generate", type=int, default=0, help="generated scenes with exact masks (default 0)")
    p.add_argument("--dims", default=",".join(str(d) for d in DEFAULT_DIMS), help="Matryoshka prefixes")
    p.add_argument("--default-dim", type=int, default=64, help="prefix the exported engine uses by default")
    p.add_argument("--out", required=True, help="output directory (checkpoint, curves, model.tvm, ...)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (the layers are tiny: more threads mostly add contention)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
