"""Data: datasets in their on-disk formats, samplers, processing, the train loader, and generated sequences.

Main entry point: :func:`fartrack.data.loader.build_train_loader` (imported lazily so that
``fartrack.data.synthetic`` stays importable without the training dependencies).
"""
