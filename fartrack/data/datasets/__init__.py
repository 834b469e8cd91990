"""Training datasets in their real on-disk formats (folders and LMDB), behind one interface."""

from fartrack.data.datasets.base import FileStore, SequenceInfo, TrackingDataset
from fartrack.data.datasets.registry import SPLIT_FILES, build_dataset, build_datasets, splits_dir

__all__ = [
    "FileStore",
    "SPLIT_FILES",
    "SequenceInfo",
    "TrackingDataset",
    "build_dataset",
    "build_datasets",
    "splits_dir",
]
