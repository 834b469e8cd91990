"""Small helpers shared by every sub-package."""

from fartrack.utils.io import atomic_write_bytes, atomic_write_text, atomic_torch_save

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_torch_save"]
