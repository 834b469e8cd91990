"""The configuration schema, the shipped experiment YAMLs, and YAML / override validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fartrack.config import (
    BASE_DEPTH,
    SCRIPTS,
    ConfigError,
    ConfigFileNotFoundError,
    config_to_dict,
    default_config,
    describe,
    get_key,
    iter_keys,
    list_configs,
    load_config,
    merge_overrides,
    parse_overrides,
    resolve_config_path,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

SHIPPED = [
    ("fartrack", "fartrack_tiny_224_full"),
    ("fartrack_distill", "fartrack_distill_224_full"),
    ("fartrack_sparse", "fartrack_sparse_224_full"),
]


def write_yaml(root: Path, text: str, script: str = "fartrack", name: str = "x") -> Path:
    """Write ``experiments/<script>/<name>.yaml`` under ``root``."""
    path = root / "experiments" / script / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str):
    write_yaml(tmp_path, text)
    return load_config("fartrack", "x", repo_root=tmp_path)


def error_of(tmp_path: Path, text: str) -> str:
    write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config("fartrack", "x", repo_root=tmp_path)
    return str(info.value)


# ----------------------------------------------------------------------------------------- defaults


def test_defaults_have_the_documented_values():
    cfg = default_config()
    assert cfg.MODEL.PRETRAIN_FILE == "" and cfg.MODEL.PRETRAIN_PTH == ""
    assert cfg.MODEL.BACKBONE.TYPE == "vit_tiny_patch16_224" and cfg.MODEL.BACKBONE.STRIDE == 16
    assert (cfg.MODEL.EMBED_DIM, cfg.MODEL.NUM_HEADS, cfg.MODEL.MLP_RATIO) == (192, 3, 4.0)
    assert (cfg.MODEL.BINS, cfg.MODEL.RANGE, cfg.MODEL.EXTENSION, cfg.MODEL.LAYERS) == (300, 2, 3, 15)
    assert cfg.MODEL.PRENUM == 0 and cfg.MODEL.DECODE == "argmax" and cfg.MODEL.EXITS == []
    assert cfg.MODEL.SPARSE == {
        "ENABLED": False,
        "RETAIN_RATIO": 0.75,
        "QUERY": "center1x1",
        "EXTRA_TERM": "none",
        "MAX_NORM": 1.0,
    }
    assert (cfg.DATA.SEARCH.SIZE, cfg.DATA.SEARCH.FACTOR) == (224, 4.0)
    assert (cfg.DATA.TEMPLATE.NUMBER, cfg.DATA.TEMPLATE.SIZE, cfg.DATA.TEMPLATE.FACTOR) == (5, 112, 2.0)
    train = cfg.TRAIN
    assert (train.CE_WEIGHT, train.GIOU_WEIGHT, train.L1_WEIGHT, train.KL_WEIGHT) == (2.0, 2.0, 0.0, 0.01)
    assert (train.CE_SPECIAL_TOKEN_WEIGHT, train.SEED, train.ACCUM_STEPS, train.OPTIMIZER) == (0.1, 1008, 1, "ADAMW")
    assert train.SCHEDULER == {"TYPE": "step", "DECAY_RATE": 0.1, "MILESTONES": []}
    assert (cfg.TEST.TEMPLATE_FACTOR, cfg.TEST.TEMPLATE_SIZE, cfg.TEST.SEARCH_FACTOR, cfg.TEST.SEARCH_SIZE) == (
        2.0,
        112,
        4.0,
        224,
    )
    assert (cfg.TEST.SCHEDULE, cfg.TEST.WARMUP) == ("exponential", "mode1")


def test_default_config_is_a_fresh_copy():
    first = default_config()
    first.MODEL.EXITS.append(5)
    first.DATA.MEAN[0] = 9.0
    second = default_config()
    assert second.MODEL.EXITS == [] and second.DATA.MEAN[0] == 0.485


def test_every_key_is_documented_and_typed():
    keys = list(iter_keys())
    assert len(keys) > 50
    for path, key in keys:
        assert key.doc.strip() and "\n" not in key.doc, path
        if key.kind is list:
            assert key.item in (int, float, str), path
        if key.choices is not None:
            assert key.default in key.choices, path
    assert "MODEL.BINS = 300" in describe()


@pytest.mark.parametrize(
    "dead",
    [
        "MODEL.DECODER",
        "MODEL.HEAD",
        "MODEL.ENCODER_LAYER",
        "TRAIN.FREEZE_LAYERS",
        "TRAIN.SCORE_WEIGHT",
        "MODEL.RETURN_INTER",
        "MODEL.EXTRA_MERGER",
        "DATA.TEMP",
        "TEST.TEMPLATE_NUMBER",
    ],
)
def test_dead_reference_keys_are_not_declared(dead):
    assert get_key(dead) is None


# ----------------------------------------------------------------------------------------- shipped YAMLs


@pytest.mark.parametrize("script,config", SHIPPED)
def test_shipped_config_loads(script, config):
    cfg = load_config(script, config)
    assert cfg.MODEL.PRETRAIN_FILE == "mae_tiny_distill_400e.pth.tar"
    assert (cfg.MODEL.BINS, cfg.MODEL.RANGE, cfg.MODEL.EXTENSION, cfg.MODEL.LAYERS) == (300, 2, 3, 15)
    assert cfg.MODEL.BACKBONE.TYPE == "vit_tiny_patch16_224"
    assert (cfg.DATA.TEMPLATE.NUMBER, cfg.DATA.TEMPLATE.SIZE, cfg.DATA.SEARCH.SIZE) == (5, 112, 224)
    assert (cfg.TEST.SEARCH_FACTOR, cfg.TEST.TEMPLATE_FACTOR) == (4.0, 2.0)
    assert cfg.TRAIN.GIOU_WEIGHT == 2.0 and cfg.TRAIN.L1_WEIGHT == 0.0 and cfg.TRAIN.DROP_PATH_RATE == 0.1
    assert config in list_configs(script)


@pytest.mark.parametrize("script,config", SHIPPED)
def test_shipped_config_has_header_and_no_absolute_paths(script, config):
    path = resolve_config_path(script, config)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "every experiment file starts with a comment header"
    cfg = load_config(script, config)

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for value in strings(config_to_dict(cfg)):
        assert not value.startswith(("/", "~")) and ":\\" not in value, value


def test_stage1_values():
    cfg = load_config("fartrack", "fartrack_tiny_224_full")
    assert cfg.TRAIN.LR == pytest.approx(4e-4) and cfg.TRAIN.BATCH_SIZE == 32 and cfg.TRAIN.EPOCH == 500
    assert cfg.TRAIN.LR_DROP_EPOCH == 400 and cfg.TRAIN.BACKBONE_MULTIPLIER == 0.1
    assert cfg.TRAIN.CE_WEIGHT == 2.0 and cfg.TRAIN.GRAD_CLIP_NORM == 0.1 and cfg.TRAIN.WEIGHT_DECAY == 1e-4
    assert cfg.TRAIN.PRINT_INTERVAL == 600 and cfg.TRAIN.VAL_EPOCH_INTERVAL == 50 and cfg.TRAIN.NUM_WORKER == 12
    assert cfg.DATA.MAX_SAMPLE_INTERVAL == 300
    assert (cfg.DATA.SEARCH.CENTER_JITTER, cfg.DATA.SEARCH.SCALE_JITTER, cfg.DATA.SEARCH.NUMBER) == (3.5, 0.5, 1)
    assert cfg.DATA.TRAIN.DATASETS_NAME == ["LASOT", "GOT10K_vottrain", "COCO17", "TRACKINGNET"]
    assert cfg.DATA.TRAIN.DATASETS_RATIO == [1.0, 1.0, 1.0, 1.0]
    assert cfg.DATA.TRAIN.SAMPLE_PER_EPOCH == 76800 and cfg.DATA.TRAIN.SAMPLE_SCOPE == "global"
    assert cfg.DATA.VAL.DATASETS_NAME == ["GOT10K_votval"] and cfg.DATA.VAL.SAMPLE_PER_EPOCH == 10000
    assert cfg.MODEL.DECODE == "argmax" and cfg.MODEL.EXITS == [] and not cfg.MODEL.SPARSE.ENABLED
    assert cfg.MODEL.PRETRAIN_PTH == "" and cfg.TEST.EPOCH == 500 and cfg.TEST.WARMUP == "mode1"


def test_distill_values():
    cfg = load_config("fartrack_distill", "fartrack_distill_224_full")
    assert cfg.MODEL.EXITS == list(range(5, 16))
    assert cfg.TEST.WARMUP == "distill" and cfg.TEST.SCHEDULE == "exponential" and cfg.MODEL.DECODE == "argmax"
    assert cfg.TRAIN.LR == pytest.approx(4e-5) and cfg.TRAIN.BACKBONE_MULTIPLIER == 1.0
    assert cfg.TRAIN.KL_WEIGHT == 0.01 and cfg.TRAIN.CE_WEIGHT == 2.0
    assert cfg.TRAIN.NUM_WORKER == 10 and cfg.TRAIN.PRINT_INTERVAL == 50 and cfg.TRAIN.VAL_EPOCH_INTERVAL == 20
    assert cfg.DATA.MAX_SAMPLE_INTERVAL == 200
    assert cfg.MODEL.PRETRAIN_PTH == "checkpoints/train/fartrack/fartrack_tiny_224_full/FARTrack_ep0500.pth.tar"


def test_sparse_values():
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    assert cfg.MODEL.SPARSE.ENABLED is True and cfg.MODEL.SPARSE.RETAIN_RATIO == 0.75
    assert (cfg.MODEL.SPARSE.QUERY, cfg.MODEL.SPARSE.EXTRA_TERM, cfg.MODEL.SPARSE.MAX_NORM) == (
        "center1x1",
        "none",
        1.0,
    )
    assert cfg.MODEL.DECODE == "mean" and cfg.MODEL.PRENUM == 0 and cfg.MODEL.EXITS == []
    assert cfg.MODEL.PRETRAIN_PTH == (
        "checkpoints/train/fartrack_distill/fartrack_distill_224_full/FARTrackDistill_ep0435.pth.tar"
    )
    assert cfg.TRAIN.LR == pytest.approx(4e-6) and cfg.TRAIN.WEIGHT_DECAY == 0.05
    assert cfg.TRAIN.BATCH_SIZE == 8 and cfg.TRAIN.EPOCH == 20 and cfg.TRAIN.LR_DROP_EPOCH == 999
    assert cfg.TRAIN.CE_WEIGHT == 0.0 and cfg.TRAIN.GIOU_WEIGHT == 2.0 and cfg.TRAIN.GRAD_CLIP_NORM == 100.0
    assert cfg.DATA.SEARCH.NUMBER == 32 and cfg.DATA.MAX_GAP == 300 and cfg.DATA.INTERVAL_PROB == 0.0
    assert cfg.DATA.TRAIN.DATASETS_NAME == ["LASOT", "GOT10K_vottrain", "TRACKINGNET"]
    assert cfg.DATA.TRAIN.SAMPLE_PER_EPOCH == 1000 and cfg.DATA.TRAIN.SAMPLE_SCOPE == "per_rank"
    assert cfg.TEST.EPOCH == 15 and cfg.TEST.WARMUP == "mode1" and cfg.TEST.SCHEDULE == "exponential"


def test_yaml_merge_keeps_defaults_and_replaces_values(tmp_path):
    cfg = load_text(tmp_path, "MODEL:\n  LAYERS: 6\nDATA:\n  SEARCH:\n    SIZE: 256\n")
    assert cfg.MODEL.LAYERS == 6 and cfg.MODEL.BINS == 300
    assert cfg.DATA.SEARCH.SIZE == 256 and cfg.DATA.SEARCH.FACTOR == 4.0
    assert load_text(tmp_path, "") == default_config()
    assert load_text(tmp_path, "# only a comment\nTRAIN:\n") == default_config()


def test_scientific_notation_reads_as_float(tmp_path):
    cfg = load_text(tmp_path, "TRAIN:\n  LR: 4e-4\n  WEIGHT_DECAY: 1E-4\n")
    assert cfg.TRAIN.LR == pytest.approx(4e-4) and isinstance(cfg.TRAIN.LR, float)
    assert cfg.TRAIN.WEIGHT_DECAY == pytest.approx(1e-4)


def test_direct_yaml_path(tmp_path):
    path = write_yaml(tmp_path / "elsewhere", "MODEL:\n  LAYERS: 10\n", name="mine")
    cfg = load_config("fartrack_sparse", path)
    assert cfg.MODEL.LAYERS == 10
    assert load_config("fartrack_sparse", str(path)).MODEL.LAYERS == 10


# ----------------------------------------------------------------------------------------- errors


def test_unknown_key_names_path_file_and_suggestion(tmp_path):
    message = error_of(tmp_path, "MODEL:\n  BINZ: 300\n")
    assert message == "experiments/fartrack/x.yaml: unknown key MODEL.BINZ (did you mean MODEL.BINS?)"


def test_unknown_key_error_is_a_value_error(tmp_path):
    write_yaml(tmp_path, "TRAIN:\n  SCORE_WEIGHT: 1.0\n")
    with pytest.raises(ValueError, match=r"unknown key TRAIN\.SCORE_WEIGHT"):
        load_config("fartrack", "x", repo_root=tmp_path)


def test_unknown_key_suggestions(tmp_path):
    assert "unknown key MODEL.LR (did you mean TRAIN.LR?)" in error_of(tmp_path, "MODEL:\n  LR: 0.1\n")
    assert "unknown key model (did you mean MODEL?)" in error_of(tmp_path, "model:\n  BINS: 3\n")
    deep = error_of(tmp_path, "MODEL:\n  SPARSE:\n    RETAIN_RATO: 0.5\n")
    assert "unknown key MODEL.SPARSE.RETAIN_RATO (did you mean MODEL.SPARSE.RETAIN_RATIO?)" in deep
    milestones = error_of(tmp_path, "TRAIN:\n  MILESTONES: [10]\n")
    assert "unknown key TRAIN.MILESTONES (did you mean TRAIN.SCHEDULER.MILESTONES?)" in milestones


def test_all_problems_reported_together(tmp_path):
    write_yaml(tmp_path, "MODEL:\n  BINZ: 1\n  DECODE: median\nTRAIN:\n  EPOCH: many\n")
    with pytest.raises(ConfigError) as info:
        load_config("fartrack", "x", repo_root=tmp_path)
    assert len(info.value.errors) == 3
    assert all(line.startswith("experiments/fartrack/x.yaml: ") for line in info.value.errors)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("MODEL:\n  BINS: '300'\n", "MODEL.BINS: expected an integer, got '300' (str)"),
        ("MODEL:\n  BINS: 300.0\n", "MODEL.BINS: expected an integer, got 300.0 (float)"),
        ("MODEL:\n  BINS: true\n", "MODEL.BINS: expected an integer, got True (bool)"),
        ("TRAIN:\n  AMP: 1\n", "TRAIN.AMP: expected a boolean (true/false), got 1 (int)"),
        ("TRAIN:\n  AMP: 'yes'\n", "TRAIN.AMP: expected a boolean (true/false), got 'yes' (str)"),
        ("TRAIN:\n  LR: fast\n", "TRAIN.LR: expected a number, got 'fast' (str)"),
        ("TRAIN:\n  LR: true\n", "TRAIN.LR: expected a number, got True (bool)"),
        ("MODEL:\n  EXITS: 5\n", "MODEL.EXITS: expected a list of integers, got 5 (int)"),
        ("MODEL:\n  EXITS: [5, 6.5]\n", "MODEL.EXITS: item 1: expected an integer, got 6.5 (float)"),
        ("MODEL:\n  LAYERS: [6]\n", "MODEL.LAYERS: expected a single value (an integer), got [6] (list)"),
        ("MODEL:\n  PRETRAIN_PTH:\n", "MODEL.PRETRAIN_PTH: expected a string, got None (NoneType)"),
        ("MODEL:\n  BACKBONE: vit\n", "MODEL.BACKBONE is a section; expected a mapping of its keys (TYPE, STRIDE)"),
        ("MODEL:\n  BINS: {A: 1}\n", "MODEL.BINS: expected a single value (an integer)"),
        ("DATA:\n  MEAN: 0.5\n", "DATA.MEAN: expected a list of numbers, got 0.5 (float)"),
        ("- MODEL\n", "the top level must be a mapping of sections (MODEL, DATA, TRAIN, TEST), got list"),
    ],
)
def test_type_errors(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_int_accepted_where_float_expected(tmp_path):
    cfg = load_text(tmp_path, "TRAIN:\n  GRAD_CLIP_NORM: 100\n  LR: 1\nDATA:\n  MEAN: [0, 1, 0]\n")
    assert cfg.TRAIN.GRAD_CLIP_NORM == 100.0 and isinstance(cfg.TRAIN.GRAD_CLIP_NORM, float)
    assert isinstance(cfg.TRAIN.LR, float) and all(isinstance(v, float) for v in cfg.DATA.MEAN)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("MODEL:\n  DECODE: median\n", "MODEL.DECODE: 'median' is not one of argmax, mean, soft (did you mean mean?)"),
        (
            "TRAIN:\n  SCHEDULER:\n    TYPE: mstep\n",
            "TRAIN.SCHEDULER.TYPE: 'mstep' is not one of step, Mstep, cosine (did you mean Mstep?)",
        ),
        (
            "TEST:\n  SCHEDULE: exp\n",
            "TEST.SCHEDULE: 'exp' is not one of exponential, linear, logarithmic, equal_interval",
        ),
        ("TEST:\n  WARMUP: mode2\n", "TEST.WARMUP: 'mode2' is not one of mode1, distill"),
        (
            "MODEL:\n  SPARSE:\n    QUERY: center5x5\n",
            "MODEL.SPARSE.QUERY: 'center5x5' is not one of center1x1, center3x3, search_all",
        ),
        (
            "MODEL:\n  SPARSE:\n    EXTRA_TERM: both\n",
            "MODEL.SPARSE.EXTRA_TERM: 'both' is not one of none, template, command",
        ),
        ("TRAIN:\n  OPTIMIZER: SGD\n", "TRAIN.OPTIMIZER: 'SGD' is not one of ADAMW"),
        (
            "DATA:\n  TRAIN:\n    DATASETS_NAME: [LASOT, GOT10k_vottrain]\n    DATASETS_RATIO: [1, 1]\n",
            "DATA.TRAIN.DATASETS_NAME: item 1: 'GOT10k_vottrain' is not one of",
        ),
    ],
)
def test_choice_errors(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("MODEL:\n  LAYERS: 16\n", "MODEL.LAYERS = 16 is out of range 1..15 (12 + MODEL.EXTENSION)"),
        ("MODEL:\n  LAYERS: 0\n", "MODEL.LAYERS: 0 is out of range [1, inf]"),
        ("MODEL:\n  EXTENSION: 0\n  LAYERS: 13\n", "MODEL.LAYERS = 13 is out of range 1..12"),
        ("MODEL:\n  EXITS: [5, 16]\n", "MODEL.EXITS: [16] out of range 1..15"),
        ("MODEL:\n  EXITS: [6, 5]\n", "MODEL.EXITS must be strictly increasing"),
        ("MODEL:\n  SPARSE:\n    RETAIN_RATIO: 1.5\n", "MODEL.SPARSE.RETAIN_RATIO: 1.5 is out of range [0.0, 1.0]"),
        ("TRAIN:\n  LR: -1.0\n", "TRAIN.LR: -1.0 is out of range [0.0, inf]"),
        (
            "DATA:\n  TRAIN:\n    DATASETS_RATIO: [1, 1]\n",
            "DATA.TRAIN.DATASETS_RATIO has 2 values but DATA.TRAIN.DATASETS_NAME has 4",
        ),
        ("DATA:\n  MEAN: [0.5, 0.5]\n", "DATA.MEAN must hold 3 values"),
        ("TRAIN:\n  SCHEDULER:\n    TYPE: Mstep\n", "TRAIN.SCHEDULER.MILESTONES must be set"),
        ("MODEL:\n  BINS: 1\n  BINS: 2\n", "found duplicate key 'BINS'"),
        ("MODEL: [unclosed\n", "experiments/fartrack/x.yaml: invalid YAML"),
    ],
)
def test_value_errors(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_depth_bound_follows_extension(tmp_path):
    assert load_text(tmp_path, "MODEL:\n  EXTENSION: 0\n  LAYERS: 12\n").MODEL.LAYERS == 12
    assert load_text(tmp_path, "MODEL:\n  LAYERS: 1\n").MODEL.LAYERS == 1
    assert load_text(
        tmp_path, "TRAIN:\n  SCHEDULER:\n    TYPE: Mstep\n    MILESTONES: [10, 20]\n"
    ).TRAIN.SCHEDULER.MILESTONES == [10, 20]


def test_missing_file_names_path_and_lists_configs(tmp_path):
    write_yaml(tmp_path, "", name="alpha")
    write_yaml(tmp_path, "", name="beta")
    with pytest.raises(ConfigFileNotFoundError) as info:
        load_config("fartrack", "gamma", repo_root=tmp_path)
    message = str(info.value)
    assert "experiments/fartrack/gamma.yaml" in message and "alpha, beta" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ConfigError)


def test_missing_shipped_config_lists_real_configs():
    with pytest.raises(FileNotFoundError, match="fartrack_tiny_224_full"):
        load_config("fartrack", "fartrack_tiny_224_ful")


def test_missing_direct_path(tmp_path):
    with pytest.raises(ConfigFileNotFoundError, match="nothing.yaml"):
        load_config("fartrack", tmp_path / "nothing.yaml")


def test_unknown_script():
    with pytest.raises(ConfigError, match=r"unknown script 'fartrak' \(did you mean fartrack\?\)"):
        load_config("fartrak", "fartrack_tiny_224_full")
    assert SCRIPTS == ("fartrack", "fartrack_distill", "fartrack_sparse")


# ----------------------------------------------------------------------------------------- overrides


def test_merge_overrides_returns_new_validated_config():
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    small = merge_overrides(cfg, {"MODEL.LAYERS": 6, "TRAIN": {"LR": 1}, "MODEL.SPARSE.RETAIN_RATIO": 0.5})
    assert small.MODEL.LAYERS == 6 and small.TRAIN.LR == 1.0 and small.MODEL.SPARSE.RETAIN_RATIO == 0.5
    assert small.MODEL.SPARSE.ENABLED is True and small.TEST.EPOCH == 15
    assert cfg.MODEL.LAYERS == 15 and cfg.TRAIN.LR == pytest.approx(4e-6)
    assert merge_overrides(cfg, {}) == cfg


def test_load_config_with_overrides():
    cfg = load_config("fartrack_distill", "fartrack_distill_224_full", overrides={"MODEL.LAYERS": 10})
    assert cfg.MODEL.LAYERS == 10 and cfg.MODEL.EXITS == list(range(5, 16))


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({"MODEL.LAYERS": 16}, "--layers: MODEL.LAYERS = 16 is out of range 1..15"),
        ({"MODEL.LAYERZ": 6}, "--layers: unknown key MODEL.LAYERZ (did you mean MODEL.LAYERS?)"),
        ({"MODEL.LAYERS": "6"}, "--layers: MODEL.LAYERS: expected an integer, got '6' (str)"),
        ({"MODEL.DECODE": "max"}, "--layers: MODEL.DECODE: 'max' is not one of argmax, mean, soft"),
        ({"MODEL": 3}, "--layers: MODEL is a section"),
    ],
)
def test_merge_overrides_validates(overrides, expected):
    with pytest.raises(ConfigError) as info:
        merge_overrides(default_config(), overrides, source="--layers")
    assert expected in str(info.value)


def test_parse_overrides():
    parsed = parse_overrides(["MODEL.LAYERS=6", "TRAIN.LR=1e-3", "MODEL.EXITS=[5, 6]", "MODEL.PRETRAIN_PTH="])
    assert parsed == {"MODEL.LAYERS": 6, "TRAIN.LR": 0.001, "MODEL.EXITS": [5, 6], "MODEL.PRETRAIN_PTH": ""}
    cfg = merge_overrides(default_config(), parsed)
    assert cfg.MODEL.LAYERS == 6 and cfg.MODEL.EXITS == [5, 6]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["MODEL.LAYERS"])


def test_config_to_dict_is_plain_and_round_trips():
    cfg = load_config("fartrack_distill", "fartrack_distill_224_full")
    plain = config_to_dict(cfg)

    def assert_plain(node):
        assert type(node) in (dict, list, str, int, float, bool), type(node)
        if isinstance(node, dict):
            for value in node.values():
                assert_plain(value)
        elif isinstance(node, list):
            for value in node:
                assert_plain(value)

    assert_plain(plain)
    assert json.loads(json.dumps(plain)) == plain
    assert merge_overrides(default_config(), plain) == cfg
    assert plain["MODEL"]["LAYERS"] <= BASE_DEPTH + plain["MODEL"]["EXTENSION"]


def test_overrides_mix_dotted_and_nested_keys():
    cfg = merge_overrides(
        default_config(), {"MODEL.SPARSE.ENABLED": True, "MODEL": {"SPARSE": {"QUERY": "center3x3"}, "LAYERS": 6}}
    )
    assert cfg.MODEL.SPARSE.ENABLED is True and cfg.MODEL.SPARSE.QUERY == "center3x3" and cfg.MODEL.LAYERS == 6
    with pytest.raises(ConfigError, match="conflicting overrides for MODEL.LAYERS"):
        merge_overrides(default_config(), {"MODEL.LAYERS": 6, "MODEL": {"LAYERS": 7}})
