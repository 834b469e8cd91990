"""FARTrack: fast autoregressive visual tracking (ICLR 2026), a PyTorch framework.

Sub-packages: ``config`` (defaults + YAML), ``models`` (the one encoder, vocabulary, sparsification,
checkpoint I/O), ``tracker`` (online tracker), ``utils`` (small shared helpers).
"""

__version__ = "0.1.0"
