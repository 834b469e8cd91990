"""ONNX Runtime backend of :class:`~fartrack.tracker.tracker.FARTracker`: the exported graphs run the network.

The tracker keeps doing crops, normalisation, decoding and the template memory in PyTorch; every network
call (template embedding and the per-frame network) goes through ONNX Runtime on the CPU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from fartrack.export.exporter import export_onnx
from fartrack.export.standalone import open_sessions


class OnnxRuntimeBackend:
    """The two exported graphs of one model (``model.onnx`` + ``model.template.onnx``) in ONNX Runtime."""

    def __init__(self, model_path: str | os.PathLike, threads: Optional[int] = None, spinning: bool = True) -> None:
        """``threads``: ONNX Runtime intra-op threads of the per-frame graph (default: its own choice).
        ``spinning``: see :func:`fartrack.export.standalone.open_sessions` (workers busy-wait within a call
        only); the tracker's own steps between calls open no multi-threaded PyTorch region
        (:meth:`fartrack.tracker.tracker.FARTracker.decode`), so nothing else competes for the cores."""
        path = Path(model_path)
        self.path = path
        self.frame, self.template = open_sessions(path, threads, spinning)
        self.input_names = [i.name for i in self.frame.get_inputs()]
        self.output_names = [o.name for o in self.frame.get_outputs()]
        self.slot_shape = tuple(self.frame.get_inputs()[0].shape)

    @classmethod
    def from_network(cls, net, params, depth: int, threads: Optional[int] = None) -> "OnnxRuntimeBackend":
        """Export ``net`` to a temporary folder and load it (the files are deleted once loaded)."""
        with tempfile.TemporaryDirectory(prefix="fartrack_onnx_") as folder:
            model, _ = export_onnx(net, params, Path(folder) / "model.onnx", depth)
            return cls(model, threads)

    @property
    def metadata(self) -> dict:
        """The ``fartrack.*`` settings stored in the model at export, decoded from JSON."""
        import json

        meta = self.frame.get_modelmeta().custom_metadata_map
        return {k[len("fartrack.") :]: json.loads(v) for k, v in meta.items() if k.startswith("fartrack.")}

    def check_matches(self, net, params, depth: int) -> None:
        """Raise ValueError (naming the file and the setting) when the model was exported for other settings."""
        from fartrack.export.exporter import metadata as expected_metadata
        import json

        expected = {k[len("fartrack.") :]: json.loads(v) for k, v in expected_metadata(net, params, depth).items()}
        found = self.metadata
        if not found:
            raise ValueError(f"{self.path}: no fartrack metadata; export it with tracking/export_onnx.py")
        for key, value in expected.items():
            if key in found and found[key] != value:
                raise ValueError(f"{self.path}: exported with {key}={found[key]!r}, but the config gives {value!r}")

    def embed_template(self, template: Tensor) -> Tensor:
        """Normalised template crop (1, 3, Z, Z) -> cached tokens (1, tz, C) (a CPU tensor)."""
        array = np.ascontiguousarray(template.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.template.run(None, {"template": array})[0])

    def run(self, feeds: dict[str, np.ndarray]) -> tuple[Tensor, Optional[Tensor]]:
        """One per-frame call; ``feeds`` by input name. Returns logits (1, 4, V) and scores (1, tz) or None."""
        outputs = self.frame.run(self.output_names, feeds)
        logits = torch.from_numpy(outputs[0])
        scores = torch.from_numpy(outputs[1]) if len(outputs) > 1 else None
        return logits, scores
