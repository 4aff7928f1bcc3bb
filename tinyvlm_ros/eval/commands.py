"""Commands to evaluate on a photo, with the objects that answer each: generated or from a file.

Generated from the category names of a photo's annotations:

* ``plain``: one per category present ("pick the cup"); every instance is a
  right answer, and every instance should be found;
* ``qualified``: with two or more instances, "take the {name} on the left",
  "... on the right", "the largest/smallest {name}", each only when it singles
  out fewer instances than there are; the right answers are the instances
  within ``margin`` of the extreme (5 % of the frame for a side, 15 % of the
  area for a size), as a person would accept either of two coins in the same
  column;
* ``absent``: "pick the {name}" for a category checked to be absent from the
  photo (LVIS ``neg_category_ids``); any detection is a false positive.

A commands file (JSON) gives them by hand instead::

    {"coffee.png": [{"command": "hand me the espresso cup", "category": "cup"},
                    {"command": "the coin on the far left", "category": "coin",
                     "annotation_ids": [37, 43]}]}

``annotation_ids`` lists the right answers when the command singles out some
instances; without it every instance of the category is right, and a category
with no instance in the photo makes an absent command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tinyvlm_ros.eval.dataset import Dataset, EvalImage, GtObject, read_json_object

KINDS = ("plain", "qualified", "absent")
#: Verbs cycled over plain commands (deterministically, by category), so the parser sees variety.
PLAIN_TEMPLATES = ("pick the {name}", "take the {name}", "grab the {name}", "find the {name}",
                   "where is the {name}", "hand me the {name}")
QUALIFIED_TEMPLATES = {"left": "take the {name} on the left", "right": "grab the {name} on the right",
                       "largest": "pick the largest {name}", "smallest": "pick the smallest {name}"}
ABSENT_TEMPLATE = "pick the {name}"
SIDE_MARGIN = 0.05
SIZE_MARGIN = 0.15


@dataclass
class EvalCommand:
    """One command on one photo.

    Attributes:
        text: the command as spoken.
        category: the category it asks for.
        kind: "plain", "qualified" or "absent".
        targets: annotation ids of the right answers (empty for absent).
        qualifier: "left", "right", "largest", "smallest" (generated qualified commands), else "".
    """

    text: str
    category: str
    kind: str
    targets: List[int] = field(default_factory=list)
    qualifier: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _template(name: str) -> str:
    # stable across runs and Python versions (no hash randomisation)
    return PLAIN_TEMPLATES[sum(map(ord, name)) % len(PLAIN_TEMPLATES)]


def singled_out(objects: Sequence[GtObject], qualifier: str, width: int, height: int) -> List[GtObject]:
    """Return the instances a qualifier picks: those within the margin of the extreme one."""
    if not objects:
        return []
    if qualifier in ("left", "right"):
        cx = [(o.box[0] + o.box[2]) / 2.0 / width for o in objects]
        best = min(cx) if qualifier == "left" else max(cx)
        return [o for o, c in zip(objects, cx) if abs(c - best) <= SIDE_MARGIN]
    if qualifier in ("largest", "smallest"):
        areas = [o.area for o in objects]
        if qualifier == "largest":
            return [o for o in objects if o.area >= (1.0 - SIZE_MARGIN) * max(areas)]
        return [o for o in objects if o.area <= min(areas) / (1.0 - SIZE_MARGIN)]
    raise ValueError(f"unknown qualifier {qualifier!r}; use one of {', '.join(QUALIFIED_TEMPLATES)}")


def generate(image: EvalImage, absent: Optional[Sequence[str]] = None,
             max_absent: Optional[int] = None) -> List[EvalCommand]:
    """Commands for one photo from its annotations (see the module docstring).

    Args:
        image: the photo.
        absent: categories to ask for that must not be found (default: the photo's checked-absent list).
        max_absent: at most this many absent commands (None: all).
    """
    out: List[EvalCommand] = []
    categories = sorted({o.category for o in image.objects})
    for name in categories:
        inst = image.instances(name)
        out.append(EvalCommand(_template(name).format(name=name), name, "plain", [o.ann_id for o in inst]))
        if len(inst) < 2:
            continue
        for q, template in QUALIFIED_TEMPLATES.items():
            picked = singled_out(inst, q, image.width, image.height)
            if len(picked) < len(inst):
                out.append(EvalCommand(template.format(name=name), name, "qualified",
                                       [o.ann_id for o in picked], q))
    names = list(image.absent if absent is None else absent)
    for name in names[:max_absent] if max_absent is not None else names:
        out.append(EvalCommand(ABSENT_TEMPLATE.format(name=name), name, "absent"))
    return out


def load_commands(path: Path, dataset: Dataset) -> Dict[str, List[EvalCommand]]:
    """Read a commands file (see the module docstring) against ``dataset``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, an unknown photo or category, or annotation ids that are not of that
            photo and category.
    """
    path = Path(path)
    data = read_json_object(path, "commands file",
                            '{"photo.png": [{"command": "pick the cup", "category": "cup"}]}')
    by_name = {img.file_name: img for img in dataset.images}
    known = set(dataset.categories.values())
    out: Dict[str, List[EvalCommand]] = {}
    for file_name, items in data.items():
        img = by_name.get(file_name)
        if img is None:
            raise ValueError(f"{path}: photo {file_name!r} is not in {dataset.annotations}")
        if not isinstance(items, list):
            raise ValueError(f"{path}: {file_name!r} must map to a list of commands")
        cmds = []
        for i, item in enumerate(items):
            where = f"{path}: {file_name}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("command"), str) \
                    or not isinstance(item.get("category"), str):
                raise ValueError(f"{where} needs a string 'command' and a string 'category'")
            cat = item["category"].strip()
            if cat not in known:
                raise ValueError(f"{where}: category {cat!r} is not in the annotations' categories")
            inst = img.instances(cat)
            ids = item.get("annotation_ids")
            if ids is not None:
                valid = {o.ann_id for o in inst}
                if not isinstance(ids, list) or not ids or any(a not in valid for a in ids):
                    raise ValueError(f"{where}: annotation_ids {ids!r} must be ids of {cat!r} objects in "
                                     f"{file_name} ({sorted(valid) or 'there are none'})")
                cmds.append(EvalCommand(item["command"], cat, "qualified", list(ids)))
            elif inst:
                cmds.append(EvalCommand(item["command"], cat, "plain", [o.ann_id for o in inst]))
            else:
                cmds.append(EvalCommand(item["command"], cat, "absent"))
        out[file_name] = cmds
    return out
