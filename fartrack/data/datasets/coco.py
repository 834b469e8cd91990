"""COCO 2017 as 1-frame sequences: ``annotations/instances_train2017.json`` + ``images/train2017/<file>``.

Every non-crowd annotation (in file order) is one sequence whose single frame is its image; the box is
the annotation's ``bbox`` (xywh). ``valid = visible = w > 50 and h > 50`` (the frame-level sampler does not
check visibility for image datasets, so small objects are still used). Frame requests return the image
once per requested id. The LMDB variant stores the same two keys.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np

from fartrack.data.datasets.base import SequenceInfo, TrackingDataset
from fartrack.data.image_io import DatasetError

__all__ = ["Coco"]

ANNOTATION_KEY = "annotations/instances_train2017.json"
IMAGE_PREFIX = "images/train2017/"


class Coco(TrackingDataset):
    """COCO 2017 train annotations as 1-frame sequences."""

    is_video = False

    def __init__(self, store, name: str = "COCO17"):
        super().__init__(store)
        self.name = name
        if not store.exists(ANNOTATION_KEY):
            raise DatasetError(f"{name}: annotation file {store.describe(ANNOTATION_KEY)} not found")
        source = store.describe(ANNOTATION_KEY)
        try:
            doc = json.loads(store.read_text(ANNOTATION_KEY))
            images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
            anns: List[Dict[str, Any]] = [a for a in doc["annotations"] if not a.get("iscrowd", 0)]
            self._anns = [(images[int(a["image_id"])], [float(v) for v in a["bbox"]], a["category_id"]) for a in anns]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{name}: {source} is not a COCO instances file: {type(exc).__name__}: {exc}") from exc
        if not self._anns:
            raise DatasetError(f"{name}: {source} has no non-crowd annotations")

    def __len__(self) -> int:
        return len(self._anns)

    def sequence_name(self, seq_id: int) -> str:
        return f"{self._anns[seq_id][0]}#{seq_id}"

    def _load_info(self, seq_id: int) -> SequenceInfo:
        bbox = np.asarray([self._anns[seq_id][1]], dtype=np.float32)
        valid = (bbox[:, 2] > 50) & (bbox[:, 3] > 50)
        return SequenceInfo(bbox=bbox, valid=valid, visible=valid.copy())

    def frame_key(self, seq_id: int, frame_id: int) -> str:
        return IMAGE_PREFIX + self._anns[seq_id][0]

    def get_frames(self, seq_id, frame_ids):
        image = self.store_of(seq_id).read_image(self.frame_key(seq_id, 0))
        return [image for _ in frame_ids]

    def get_boxes(self, seq_id, frame_ids):
        return np.repeat(self.sequence_info(seq_id).bbox[:1], len(frame_ids), axis=0)
