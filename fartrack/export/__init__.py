"""CPU deployment: ONNX export of the per-frame network and runtime backends.

- :mod:`fartrack.export.exporter` (torch): export a FARTrack network to two ONNX graphs, the per-frame
  network and the template embedder, with the tracker settings in the model metadata.
- :mod:`fartrack.export.backend` (torch + onnxruntime): the ONNX Runtime backend of :class:`FARTracker`.
- :mod:`fartrack.export.standalone` (numpy + onnxruntime only, no torch): pre/post-processing and a
  complete tracker loop around the exported graphs, for deployment without PyTorch.

This package module imports nothing heavy, so ``fartrack.export.standalone`` can be imported without torch.
"""
