"""ImageNet-VID: tracklets parsed from ``Annotations/VID/train/<set>/<video>/*.xml``.

Frames are ``Data/VID/train/ILSVRC2015_VID_train_%04d/ILSVRC2015_train_%08d/%06d.JPEG``. On first use
every XML is parsed into tracklets: one per track id, from its first frame to the first frame where it is
missing; boxes are ``(xmin, ymin, xmax - xmin, ymax - ymin)`` and ``visible = occluded == 0``. Tracklets
whose first box covers the whole image (``sqrt(box area / image area) >= 1``) are dropped. The result is
cached in ``<root>/cache.json`` (written atomically; the LMDB variant must contain that key).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset, valid_boxes
from fartrack.data.image_io import DatasetError
from fartrack.utils.io import atomic_write_text

__all__ = ["ImagenetVid", "parse_vid_annotations"]

_NUM = re.compile(r"(\d+)$")


def _int_suffix(name: str) -> int:
    match = _NUM.search(name)
    if not match:
        raise DatasetError(f"ImageNet-VID: folder name {name!r} does not end in a number")
    return int(match.group(1))


def parse_vid_annotations(root: Path) -> List[Dict[str, Any]]:
    """Parse all train XML files under ``root`` into a list of tracklet dicts (the ``cache.json`` content)."""
    ann_root = Path(root) / "Annotations" / "VID" / "train"
    if not ann_root.is_dir():
        raise DatasetError(f"VID: annotation folder {os.fspath(ann_root)} not found")
    tracklets: List[Dict[str, Any]] = []
    for set_dir in sorted(p for p in ann_root.iterdir() if p.is_dir()):
        set_id = _int_suffix(set_dir.name)
        for vid_dir in sorted(p for p in set_dir.iterdir() if p.is_dir()):
            vid_id = _int_suffix(vid_dir.name)
            frames = []
            for xml_path in sorted(vid_dir.glob("*.xml")):
                try:
                    frames.append(ET.parse(xml_path).getroot())
                except ET.ParseError as exc:
                    raise DatasetError(f"VID: cannot parse {os.fspath(xml_path)}: {exc}") from exc
            if not frames:
                continue
            size = frames[0].find("size")
            image_size = [int(size.find("width").text), int(size.find("height").text)]
            objects = [{int(o.find("trackid").text): o for o in f.findall("object")} for f in frames]
            started = set()
            for f, objs in enumerate(objects):
                for track_id, obj in objs.items():
                    if track_id in started:
                        continue
                    started.add(track_id)
                    anno, visible = [], []
                    g = f
                    while g < len(objects) and track_id in objects[g]:
                        o = objects[g][track_id]
                        bb = o.find("bndbox")
                        x1, y1 = int(bb.find("xmin").text), int(bb.find("ymin").text)
                        x2, y2 = int(bb.find("xmax").text), int(bb.find("ymax").text)
                        anno.append([x1, y1, x2 - x1, y2 - y1])
                        visible.append(o.find("occluded").text.strip() == "0")
                        g += 1
                    first = anno[0]
                    if np.sqrt(max(first[2] * first[3], 0) / float(image_size[0] * image_size[1])) >= 1:
                        continue
                    tracklets.append(
                        {"set_id": set_id, "vid_id": vid_id, "class_name": obj.find("name").text,
                         "start_frame": f, "anno": anno, "target_visible": visible, "image_size": image_size}
                    )
    return tracklets


class ImagenetVid(TrackingDataset):
    """ImageNet-VID tracklets (see the module docstring)."""

    def __init__(self, store, name: str = "VID", root: Path = None):
        super().__init__(store)
        self.name = name
        if store.exists("cache.json"):
            try:
                self.tracklets = json.loads(store.read_text("cache.json"))
            except ValueError as exc:
                raise DatasetError(f"{name}: {store.describe('cache.json')} is not valid JSON: {exc}") from exc
        elif root is not None:
            self.tracklets = parse_vid_annotations(root)
            try:
                atomic_write_text(Path(root) / "cache.json", json.dumps(self.tracklets))
            except OSError:
                pass  # a read-only dataset folder: parse again next time
        else:
            raise DatasetError(f"{name}: {store.describe('cache.json')} not found")
        if not self.tracklets:
            raise DatasetError(f"{name}: no tracklets found under {store.describe('')}")

    def __len__(self) -> int:
        return len(self.tracklets)

    def sequence_name(self, seq_id: int) -> str:
        t = self.tracklets[seq_id]
        return f"ILSVRC2015_train_{t['vid_id']:08d}@{t['start_frame']}"

    def _load_info(self, seq_id: int) -> SequenceInfo:
        t = self.tracklets[seq_id]
        bbox = np.asarray(t["anno"], dtype=np.float32).reshape(-1, 4)
        valid = valid_boxes(bbox)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid & np.asarray(t["target_visible"], dtype=bool))

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        t = self.tracklets[seq_id]
        return (
            f"Data/VID/train/ILSVRC2015_VID_train_{t['set_id']:04d}/ILSVRC2015_train_{t['vid_id']:08d}/"
            f"{t['start_frame'] + frame_id:06d}.JPEG"
        )
