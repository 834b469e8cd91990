"""Evaluation: benchmark sequence lists, the runner, metrics per protocol, packing, plots and profiling."""
