"""Data: datasets in their on-disk formats, samplers, processing, and generated (synthetic) sequences."""
