"""Export a FARTrack checkpoint to ONNX for CPU deployment (the per-frame network + the template embedder).

    python tracking/export_onnx.py --checkpoint PATH --config CONFIG [--script SCRIPT] --layers L --out model.onnx
        [--portable] [--int8 model_int8.onnx] [--no-check]

Writes OUT (the per-frame network) and OUT's ``.template.onnx`` sibling (the template embedder), with the
tracker settings in their metadata, then checks ONNX Runtime against PyTorch on random inputs (skip with
--no-check). Run the result with ``build_tracker(..., backend="onnxruntime", onnx_model=OUT)`` or, without
PyTorch, with ``fartrack.export.standalone.OnnxTracker(OUT)``. The per-frame graph uses ONNX Runtime's fused
CPU operators (``com.microsoft`` domain); ``--portable`` writes a graph of standard ONNX operators (opset 17)
instead, for other runtimes (same inputs and outputs, slower in ONNX Runtime).
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402


def main(argv=None) -> int:
    """Parse arguments, export, verify and report the written files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint to export (reference or ours)")
    parser.add_argument("--config", required=True, help="experiment config name (experiments/<script>/<config>.yaml)")
    parser.add_argument("--script", default=None,
                        help="fartrack | fartrack_distill | fartrack_sparse (default: the one holding --config)")
    parser.add_argument("--layers", type=int, default=None, help="layers to export: 15 tiny, 10 nano, 6 pico")
    parser.add_argument("--out", required=True, help="output .onnx path (the template graph goes next to it)")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    parser.add_argument("--portable", action="store_true",
                        help="standard ONNX operators only (for runtimes other than ONNX Runtime; slower there)")
    parser.add_argument("--int8", default=None, metavar="OUT_INT8",
                        help="also write a dynamically int8-quantised copy here (optional; changes the outputs)")
    args = parser.parse_args(argv)

    from fartrack.config import ConfigError, load_config
    from fartrack.export.exporter import export_onnx, quantize_int8, verify_export
    from fartrack.models.build import build_tracker_network
    from fartrack.tracker.build import fit_depth_to_network
    from fartrack.tracker.tracker import tracker_params_from
    from fartrack.utils.cli import report_error

    try:
        script = args.script or _script_of(args.config)
        cfg = load_config(script, args.config, repo_root=REPO_ROOT)
        net = build_tracker_network(cfg, args.checkpoint, "cpu")
        params = tracker_params_from(cfg, depth=args.layers)
        fit_depth_to_network(params, net, args.layers)
        depth = net.cfg.depth if params.depth is None else params.depth
        model, template = export_onnx(net, params, args.out, depth, portable=args.portable)
        kind = "standard operators" if args.portable else "ONNX Runtime operators"
        print(f"wrote {model} and {template} ({depth} layers, {net.net_type}, {kind})")
        if not args.no_check:
            diff = verify_export(net, params, model, depth)
            print(f"ONNX Runtime vs PyTorch: max |logits difference| {diff:.3g}")
            if diff > 1e-4:
                print(f"export_onnx: error: {model}: logits differ from PyTorch by {diff:.3g} (> 1e-4)", file=sys.stderr)
                return 1
        if args.int8:
            quantized, _ = quantize_int8(model, args.int8)
            print(f"wrote {quantized} (int8 dynamic quantisation; not equal to the reference)")
            if not args.no_check:
                diff = verify_export(net, params, quantized, depth)
                print(f"int8 ONNX Runtime vs PyTorch: max |logits difference| {diff:.3g}")
    except (ConfigError, ValueError, OSError) as err:
        return report_error("export_onnx", err)
    return 0


def _script_of(config: str) -> str:
    """The experiments/<script>/ folder that holds ``<config>.yaml`` (error if none or several)."""
    root = os.path.join(REPO_ROOT, "experiments")
    found = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, config + ".yaml")))
    if len(found) != 1:
        where = "no experiments/<script>/" if not found else f"several script folders ({', '.join(found)}) with "
        raise ValueError(f"{where}{config}.yaml; pass --script")
    return found[0]


if __name__ == "__main__":
    sys.exit(main())
