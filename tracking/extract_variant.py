"""Extract a shallow FARTrack variant (nano: 10 layers, pico: 6) from a distilled (or any) checkpoint.

    python tracking/extract_variant.py --checkpoint FARTrackDistill_ep0500.pth.tar --layers 10 --out nano.pth.tar
    python tracking/extract_variant.py --checkpoint distilled.pth.tar --remove_layers 7 8 9 --out student.pth.tar

The output holds only the kept layers, renumbered as a prefix (layer i of the variant = ``blocks.i-1`` for
i <= 12, then ``extension.*``), plus the embeddings, final norm and head, under ``net`` with the reference key
names, and ``layers`` = the variant's depth. Load it with
``fartrack.models.pretrained.load_variant_network(cfg, path)`` (the architecture is taken from the file's
``layers``) and track with that depth. ``--layers L`` keeps layers 1..L (the self-distillation exits);
``--remove_layers`` keeps every layer except those (the cross-layer distillation student,
``TRAIN.REMOVE_LAYERS``). An existing ``--out`` is never overwritten unless ``--force`` is given.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from fartrack.config import BASE_DEPTH  # noqa: E402
from fartrack.models.checkpoint import CheckpointError, extract_state_dict, read_checkpoint, save_checkpoint  # noqa: E402
from fartrack.models.pretrained import state_dict_depth, variant_state_dict  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402


def main(argv=None) -> int:
    """Parse arguments, extract the variant, write it atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="source checkpoint (weights under 'net')")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--layers", type=int, help="keep layers 1..L (nano 10, pico 6)")
    group.add_argument("--remove_layers", type=int, nargs="+", help="1-based layers to drop (others kept in order)")
    parser.add_argument("--out", required=True, help="output checkpoint path (.pth.tar)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite it")
        ckpt = read_checkpoint(args.checkpoint)
        state = extract_state_dict(ckpt, args.checkpoint)
        depth = state_dict_depth(state, BASE_DEPTH)
        if args.layers is not None:
            if not 1 <= args.layers <= depth:
                raise ValueError(f"--layers {args.layers} is out of range 1..{depth} (layers in {args.checkpoint})")
            kept = list(range(1, args.layers + 1))
        else:
            bad = sorted(set(l for l in args.remove_layers if not 1 <= l <= depth))
            if bad:
                raise ValueError(f"--remove_layers {bad} out of range 1..{depth} (layers in {args.checkpoint})")
            kept = [l for l in range(1, depth + 1) if l not in set(args.remove_layers)]
            if not kept:
                raise ValueError("--remove_layers removes every layer")
        variant = variant_state_dict(state, kept, BASE_DEPTH)
        net_type = ckpt.get("net_type") if isinstance(ckpt.get("net_type"), str) else "FARTrackDistill"
        epoch = ckpt.get("epoch") if type(ckpt.get("epoch")) is int else 0
        save_checkpoint(
            out, variant, net_type=net_type, epoch=epoch,
            extra={"layers": len(kept), "kept_layers": kept, "source": str(args.checkpoint)},
        )
    except (CheckpointError, ValueError, OSError) as err:
        return report_error("extract_variant", err)
    print(f"wrote {out}: {len(kept)} layers (source layers {kept}) from {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
