"""The one configuration schema shared by the three training scripts.

Every key is declared once, with its default, its type and a one-line description. The scripts
``fartrack``, ``fartrack_distill`` and ``fartrack_sparse`` differ only through the values in their YAML
files (``experiments/<script>/<config>.yaml``), never through separate schemas.

Defaults are the stage-1 recipe (``experiments/fartrack/fartrack_tiny_224_full.yaml``), which is also the
reference release's behaviour wherever both define a value. Only keys that the code honours are declared:
the reference's dead keys (``MODEL.DECODER.*``, ``MODEL.HEAD.*``, ``ENCODER_LAYER``, ``FREEZE_LAYERS``,
``SCORE_WEIGHT``, ...) are deliberately absent, so a YAML that sets them is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from easydict import EasyDict

__all__ = [
    "BASE_DEPTH",
    "DATASET_NAMES",
    "SCHEMA",
    "SCRIPTS",
    "Key",
    "default_config",
    "default_dict",
    "describe",
    "get_key",
    "iter_keys",
]

#: The training scripts (one folder each under ``experiments/``).
SCRIPTS: Tuple[str, ...] = ("fartrack", "fartrack_distill", "fartrack_sparse")

#: Number of ViT-Tiny blocks before the ``MODEL.EXTENSION`` extra blocks (depth = BASE_DEPTH + EXTENSION).
BASE_DEPTH = 12

_LMDB_CAPABLE = ("LASOT", "GOT10K_vottrain", "GOT10K_votval", "GOT10K_train_full", "COCO17", "TRACKINGNET", "VID")

#: Names accepted in ``DATA.TRAIN.DATASETS_NAME`` / ``DATA.VAL.DATASETS_NAME``.
DATASET_NAMES: Tuple[str, ...] = (
    "LASOT",
    "GOT10K_vottrain",
    "GOT10K_votval",
    "GOT10K_train_full",
    "GOT10K_official_val",
    "COCO17",
    "TRACKINGNET",
    "VID",
    "VastTrack",
    "SYNTHETIC",
    "CUSTOM",  # generic folder of sequences (images + groundtruth.txt) at the settings key custom_dir
) + tuple(f"{name}_lmdb" for name in _LMDB_CAPABLE)


@dataclass(frozen=True)
class Key:
    """Declaration of one configuration key.

    Attributes:
        default: default value; its Python type is the key's type (``bool``, ``int``, ``float``, ``str`` or
            ``list``). An ``int`` is accepted where a ``float`` is declared.
        doc: one-line description.
        choices: allowed values for a scalar key (``None`` = any value of the right type).
        item: element type of a list key (``int``, ``float`` or ``str``).
        item_choices: allowed values for each element of a list key.
        low: inclusive lower bound for a number (or each number of a list).
        high: inclusive upper bound for a number (or each number of a list).
    """

    default: Any
    doc: str
    choices: Optional[Tuple[Any, ...]] = None
    item: Optional[type] = None
    item_choices: Optional[Tuple[Any, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None

    @property
    def kind(self) -> type:
        """The declared type of the value."""
        return type(self.default)


Schema = Dict[str, Union[Key, "Schema"]]

_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]

SCHEMA: Schema = {
    "MODEL": {
        "PRETRAIN_FILE": Key("", "MAE checkpoint file in pretrained_models/ used to initialise stage 1 ('' = none)"),
        "PRETRAIN_PTH": Key(
            "", "previous-stage checkpoint to start from, relative to --save_dir or absolute ('' = none)"
        ),
        "EMBED_INIT": Key(
            "trunc_normal",
            "init of the position embeddings and coordinate-bin embeddings (sincos: sine-cosine codes, for "
            "training from scratch without MAE weights); weights loaded afterwards replace it",
            choices=("trunc_normal", "sincos"),
        ),
        "BACKBONE": {
            "TYPE": Key("vit_tiny_patch16_224", "ViT variant of the encoder (names the MAE weights layout)"),
            "STRIDE": Key(16, "patch size and stride of the patch embedding, in pixels", low=1),
        },
        "EMBED_DIM": Key(192, "token width of the encoder", low=1),
        "NUM_HEADS": Key(3, "attention heads per layer", low=1),
        "MLP_RATIO": Key(4.0, "MLP hidden width / EMBED_DIM", low=0.0),
        "BINS": Key(300, "quantisation bins per unit of normalised crop coordinate", low=1),
        "RANGE": Key(2, "coordinate span in crop widths: tokens cover [-(RANGE-1)/2, (RANGE+1)/2)", low=1),
        "EXTENSION": Key(3, "extra transformer blocks appended after the 12 ViT blocks", low=0),
        "LAYERS": Key(
            15, "layers run at inference and as final output (tiny 15, nano 10, pico 6; 1..12+EXTENSION)", low=1
        ),
        "PRENUM": Key(0, "previous boxes fed as trajectory tokens (0 = off, the reference behaviour)", low=0),
        "DECODE": Key(
            "argmax",
            "box decode rule: reference argmax, soft-argmax, or their mean",
            choices=("argmax", "mean", "soft"),
        ),
        "EXITS": Key(
            [], "1-based depths whose logits the training forward also emits ([] = final only)", item=int, low=1
        ),
        "SPARSE": {
            "ENABLED": Key(False, "inter-frame template-token sparsification (stage 3 model and tracker)"),
            "RETAIN_RATIO": Key(
                0.75, "kept fraction per older template: int(49*(1-ratio)) tokens pruned", low=0.0, high=1.0
            ),
            "QUERY": Key(
                "center1x1",
                "search tokens whose attention ranks template tokens",
                choices=("center1x1", "center3x3", "search_all"),
            ),
            "EXTRA_TERM": Key(
                "none", "extra importance term added to the query attention", choices=("none", "template", "command")
            ),
            "MAX_NORM": Key(
                1.0, "embedding max-norm of the command-token rows in the sparse model (0 disables)", low=0.0
            ),
        },
    },
    "DATA": {
        "MEAN": Key(list(_IMAGENET_MEAN), "per-channel normalisation mean (RGB, 0..1 scale)", item=float),
        "STD": Key(list(_IMAGENET_STD), "per-channel normalisation std (RGB, 0..1 scale)", item=float, low=0.0),
        "SAMPLER_MODE": Key(
            "causal", "frame-level sampler mode (templates before the search frame)", choices=("causal",)
        ),
        "MAX_SAMPLE_INTERVAL": Key(300, "frame-level sampler: max frame gap between templates and search", low=1),
        "MAX_GAP": Key(300, "sequence sampler (stage 3): max gap from the last template to the clip start", low=1),
        "INTERVAL_PROB": Key(
            0.0, "sequence sampler: probability of random-interval instead of sequential clips", low=0.0, high=1.0
        ),
        "MAX_INTERVAL": Key(5, "sequence sampler: max gap between clip frames in random-interval mode", low=1),
        "SPLITS_DIR": Key(
            "lib/train/data_specs",
            "folder of the split files (got10k_vot_train_split.txt, lasot_train_split.txt, ...); relative to the "
            "workspace_dir of lib/train/admin/local.py, or absolute",
        ),
        "SAMPLE_RETRY_LIMIT": Key(
            100, "consecutive unusable samples (invalid crop, unreadable frame) before training stops", low=1
        ),
        "TRAIN": {
            "DATASETS_NAME": Key(
                ["LASOT", "GOT10K_vottrain", "COCO17", "TRACKINGNET"],
                "training datasets",
                item=str,
                item_choices=DATASET_NAMES,
            ),
            "DATASETS_RATIO": Key(
                [1.0, 1.0, 1.0, 1.0], "relative sampling weight of each training dataset", item=float, low=0.0
            ),
            "SAMPLE_PER_EPOCH": Key(76800, "training samples (frame level) or clips (stage 3) per epoch", low=1),
            "SAMPLE_SCOPE": Key(
                "global",
                "SAMPLE_PER_EPOCH counts all ranks ('global') or each rank ('per_rank')",
                choices=("global", "per_rank"),
            ),
        },
        "VAL": {
            "DATASETS_NAME": Key(["GOT10K_votval"], "validation datasets", item=str, item_choices=DATASET_NAMES),
            "DATASETS_RATIO": Key([1.0], "relative sampling weight of each validation dataset", item=float, low=0.0),
            "SAMPLE_PER_EPOCH": Key(10000, "validation samples per validation run", low=1),
        },
        "SEARCH": {
            "SIZE": Key(224, "search crop size in pixels", low=1),
            "FACTOR": Key(4.0, "search crop side / sqrt(target area)", low=0.0),
            "CENTER_JITTER": Key(3.5, "training centre jitter of the search box (frame-level stages)", low=0.0),
            "SCALE_JITTER": Key(0.5, "training log-scale jitter of the search box (frame-level stages)", low=0.0),
            "NUMBER": Key(1, "search frames per sample (frame level: 1; stage 3: frames per clip)", low=1),
        },
        "TEMPLATE": {
            "NUMBER": Key(5, "templates per sample, in training and in the tracker", low=1),
            "SIZE": Key(112, "template crop size in pixels", low=1),
            "FACTOR": Key(2.0, "template crop side / sqrt(target area)", low=0.0),
            "CENTER_JITTER": Key(0.0, "training centre jitter of the template boxes", low=0.0),
            "SCALE_JITTER": Key(0.0, "training log-scale jitter of the template boxes", low=0.0),
        },
    },
    "TRAIN": {
        "LR": Key(4e-4, "base learning rate (non-backbone, embeddings, head bias, extension blocks)", low=0.0),
        "WEIGHT_DECAY": Key(1e-4, "AdamW weight decay, applied to every parameter", low=0.0),
        "EPOCH": Key(500, "number of training epochs", low=1),
        "LR_DROP_EPOCH": Key(400, "StepLR step size in epochs (SCHEDULER.TYPE 'step')", low=1),
        "BATCH_SIZE": Key(32, "batch size per process (samples, or clips in stage 3)", low=1),
        "NUM_WORKER": Key(12, "data-loader worker processes per training process", low=0),
        "OPTIMIZER": Key("ADAMW", "optimiser", choices=("ADAMW",)),
        "BACKBONE_MULTIPLIER": Key(
            0.1, "LR multiplier of the ViT backbone group (patch embed, blocks 0..11, norm)", low=0.0
        ),
        "DROP_PATH_RATE": Key(0.1, "stochastic depth: linear 0..rate over the 12 ViT blocks", low=0.0, high=1.0),
        "GRAD_CLIP_NORM": Key(0.1, "gradient-norm clipping threshold (0 disables; also on the AMP path)", low=0.0),
        "AMP": Key(False, "automatic mixed precision (autocast + GradScaler)"),
        "PRINT_INTERVAL": Key(600, "iterations between log lines", low=1),
        "VAL_EPOCH_INTERVAL": Key(50, "epochs between validation runs (frame-level stages)", low=1),
        "SCHEDULER": {
            "TYPE": Key("step", "LR schedule, stepped once per epoch", choices=("step", "Mstep", "cosine")),
            "DECAY_RATE": Key(0.1, "LR decay factor (gamma) of 'step' and 'Mstep'", low=0.0),
            "MILESTONES": Key([], "epochs at which 'Mstep' decays the LR", item=int, low=1),
        },
        "CE_WEIGHT": Key(2.0, "weight of the token cross-entropy loss", low=0.0),
        "GIOU_WEIGHT": Key(2.0, "weight of the SIoU box loss (reference key name)", low=0.0),
        "L1_WEIGHT": Key(0.0, "weight of the L1 loss on soft-argmax coordinates", low=0.0),
        "KL_WEIGHT": Key(0.01, "weight of the inter-exit KL loss (self-distillation, MODEL.EXITS)", low=0.0),
        # stage-2 variants (fartrack/train/stages.py): reference = adjacent exits, no removed layers
        "DISTILL_MODE": Key(
            "adjacent",
            "KL teacher of each exit: the next deeper exit ('adjacent') or the final output ('deep_to_shallow')",
            choices=("adjacent", "deep_to_shallow"),
        ),
        "REMOVE_LAYERS": Key(
            [], "cross-layer distillation baseline: 1-based layers the student skips ([] = off)", item=int, low=1
        ),
        # stage 3: frames per loss-pass backward (0 = a whole clip per backward, the reference)
        "CLIP_CHUNK": Key(0, "stage-3 loss pass: frames per backward chunk (0 = whole clip)", low=0),
        "CE_SPECIAL_TOKEN_WEIGHT": Key(
            0.1, "cross-entropy class weight of the special (non-coordinate) tokens", low=0.0
        ),
        "SEED": Key(1008, "random seed (each rank adds its rank)", low=0),
        "ACCUM_STEPS": Key(1, "batches whose gradients are accumulated per optimiser step", low=1),
        "AMP_DTYPE": Key(
            "auto", "autocast dtype when AMP is on (auto: float16 on CUDA, bfloat16 on CPU)",
            choices=("auto", "float16", "bfloat16"),
        ),
        "SAVE_EVERY_EPOCH": Key(5, "write a checkpoint every N epochs (reference: 5)", low=1),
        "SAVE_LAST_EPOCHS": Key(5, "also write a checkpoint in each of the last N epochs (reference: 5)", low=0),
        "TENSORBOARD": Key(False, "write TensorBoard scalars under <save_dir>/tensorboard/train/<script>/<config>"),
    },
    "TEST": {
        "TEMPLATE_FACTOR": Key(2.0, "tracker template crop side / sqrt(target area)", low=0.0),
        "TEMPLATE_SIZE": Key(112, "tracker template crop size in pixels", low=1),
        "SEARCH_FACTOR": Key(4.0, "tracker search crop side / sqrt(target area)", low=0.0),
        "SEARCH_SIZE": Key(224, "tracker search crop size in pixels", low=1),
        "EPOCH": Key(500, "epoch of the checkpoint evaluated by default", low=0),
        "SCHEDULE": Key(
            "exponential",
            "which stored templates fill the template slots",
            choices=("exponential", "linear", "logarithmic", "equal_interval"),
        ),
        "WARMUP": Key(
            "mode1", "slot filling while fewer templates than slots are stored", choices=("mode1", "distill")
        ),
    },
}


def iter_keys(schema: Optional[Schema] = None, prefix: str = "") -> Iterator[Tuple[str, Key]]:
    """Yield ``(dotted_path, Key)`` for every leaf of ``schema`` (default: :data:`SCHEMA`), in order."""
    for name, node in (SCHEMA if schema is None else schema).items():
        path = f"{prefix}{name}"
        if isinstance(node, Key):
            yield path, node
        else:
            yield from iter_keys(node, prefix=f"{path}.")


def get_key(path: str) -> Union[Key, Schema, None]:
    """The :class:`Key` (or section dict) at dotted ``path``, or ``None`` if it is not declared."""
    node: Any = SCHEMA
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _defaults_of(schema: Schema) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, node in schema.items():
        if isinstance(node, Key):
            out[name] = list(node.default) if isinstance(node.default, list) else node.default
        else:
            out[name] = _defaults_of(node)
    return out


def default_dict() -> Dict[str, Any]:
    """A fresh plain nested ``dict`` of the defaults."""
    return _defaults_of(SCHEMA)


def default_config() -> EasyDict:
    """A fresh copy of the default configuration tree (mutating it never affects later calls)."""
    return EasyDict(_defaults_of(SCHEMA))


def describe() -> str:
    """Human-readable listing of every key: ``PATH = default  # description``."""
    return "\n".join(f"{path} = {key.default!r}  # {key.doc}" for path, key in iter_keys())
