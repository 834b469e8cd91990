"""Tests of fartrack.models.checkpoint: safe reading, strict key checks, conversion and atomic writes.

The real network class is not needed: stand-in modules reproduce the reference key names and shapes from
docs/reference/STATE_DICT_KEYS.txt (skipped when that file is absent). Fixture checkpoints come from the
``official_dir`` fixture (skipped when absent) and are never copied into the repository.
"""

from __future__ import annotations

import builtins
import collections
import logging
import os
import pickle
import re
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from fartrack.models import safe_load as ckpt_mod
from fartrack.models.checkpoint import (
    DEAD_KEY_PATTERNS,
    CheckpointError,
    PlaceholderObject,
    checkpoint_kind,
    dense_to_sparse_state_dict,
    extract_state_dict,
    is_dead_key,
    load_model_weights,
    load_state_dict_checked,
    num_template_slots,
    read_checkpoint,
    save_checkpoint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
KEYS_FILE = REPO_ROOT.parent / "shared" / "docs" / "reference" / "STATE_DICT_KEYS.txt"
LOGGER = "fartrack.models.safe_load"
REFERENCE_GLOBALS = {
    "lib.train.admin.local.EnvironmentSettings",
    "lib.train.admin.settings.Settings",
    "lib.train.admin.stats.AverageMeter",
    "lib.train.admin.stats.StatValue",
}


# ---------------------------------------------------------------------------------------------------------------
# Stand-in models built from STATE_DICT_KEYS.txt
# ---------------------------------------------------------------------------------------------------------------


def _parse_keys_file(path: Path) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    sections: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    current = None
    for line in path.read_text().splitlines():
        header = re.match(r"^## (\w+):", line)
        if header:
            current = sections.setdefault(header.group(1), [])
            continue
        if current is None or not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")
        current.append((key, tuple(int(n) for n in re.findall(r"\d+", shape))))
    return sections


@pytest.fixture(scope="session")
def reference_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    if not KEYS_FILE.is_file():
        pytest.skip(f"reference key list not found at {KEYS_FILE}")
    sections = _parse_keys_file(KEYS_FILE)
    assert len(sections["fartrack"]) == 193 and len(sections["fartrack_sparse"]) == 255
    return sections


class StandIn(nn.Module):
    """Holds tensors under the given dotted names; dead reference tensors are persistent buffers (like ours)."""

    def __init__(self, entries: list[tuple[str, tuple[int, ...]]], seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        sparse = any(".masknorm" in key for key, _ in entries)
        for key, shape in entries:
            parent: nn.Module = self
            *path, leaf = key.split(".")
            for part in path:
                child = parent._modules.get(part)
                if child is None:
                    child = nn.Module()
                    parent.add_module(part, child)
                parent = child
            value = torch.randn(shape, generator=generator)
            if is_dead_key(key, sparse):
                parent.register_buffer(leaf, value, persistent=True)
            else:
                parent.register_parameter(leaf, nn.Parameter(value))


def _model(reference_keys, name: str, seed: int = 0) -> StandIn:
    return StandIn(reference_keys[name], seed=seed)


# ---------------------------------------------------------------------------------------------------------------
# Fixture checkpoints
# ---------------------------------------------------------------------------------------------------------------


class _IndependentStub:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.state = state


class _IndependentUnpickler(pickle.Unpickler):
    """A different way to read the trusted fixtures: stub only the reference package, resolve the rest."""

    def find_class(self, module, name):
        if module.startswith("lib."):
            return _IndependentStub
        return super().find_class(module, name)


_INDEPENDENT_PICKLE = types.SimpleNamespace(
    __name__="independent_pickle",
    Unpickler=_IndependentUnpickler,
    load=lambda f, **kw: _IndependentUnpickler(f, **kw).load(),
)


@pytest.fixture(scope="module")
def sparse_file(official_dir: Path) -> Path:
    return official_dir / "checkpoint_sparse.pth"


@pytest.fixture(scope="module")
def stage1_file(official_dir: Path) -> Path:
    path = official_dir / "checkpoint_stage1.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def sparse_ckpt(sparse_file: Path) -> dict:
    return read_checkpoint(sparse_file)


@pytest.fixture(scope="module")
def stage1_ckpt(stage1_file: Path) -> dict:
    return read_checkpoint(stage1_file)


@pytest.fixture(scope="module")
def sparse_sd(sparse_ckpt, sparse_file) -> "OrderedDict[str, torch.Tensor]":
    return extract_state_dict(sparse_ckpt, sparse_file)


@pytest.fixture(scope="module")
def stage1_sd(stage1_ckpt, stage1_file) -> "OrderedDict[str, torch.Tensor]":
    return extract_state_dict(stage1_ckpt, stage1_file)


@pytest.mark.parametrize("name", ["checkpoint_sparse.pth", "checkpoint_stage1.pth"])
def test_plain_weights_only_load_refuses_fixture(official_dir: Path, name: str):
    """Proves the fallback is needed (and hence exercised) for reference checkpoints."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(official_dir / name, map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    "name, count, epoch, net_type", [("checkpoint_sparse.pth", 255, 15, "FARTrackSparse"), ("checkpoint_stage1.pth", 193, 500, "FARTrack")]
)
def test_fixture_loads_via_restricted_unpickler(official_dir, caplog, name, count, epoch, net_type):
    path = official_dir / name
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ckpt = read_checkpoint(path)
    assert list(ckpt) == [
        "epoch", "actor_type", "net_type", "net", "net_info", "constructor", "optimizer", "stats", "settings"
    ]
    assert ckpt["epoch"] == epoch and ckpt["net_type"] == net_type
    assert ckpt["net_info"] is None and ckpt["constructor"] is None
    # the reference classes became inert placeholders that kept their (plain) state
    settings = ckpt["settings"]
    assert isinstance(settings, PlaceholderObject)
    assert settings.placeholder_for == "lib.train.admin.settings.Settings"
    assert settings.placeholder_state["device"] == torch.device("cuda:0")
    assert settings.placeholder_state["env"].placeholder_for == "lib.train.admin.local.EnvironmentSettings"
    assert isinstance(ckpt["stats"]["train"]["Loss/total"], PlaceholderObject)
    # every substituted global is logged
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    for qualified in REFERENCE_GLOBALS:
        assert qualified in logged
    assert "collections.OrderedDict" not in logged and "torch.device" not in logged

    state_dict = extract_state_dict(ckpt, path)
    assert len(state_dict) == count
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in state_dict.values())
    rows = state_dict["backbone.word_embeddings.weight"]
    torch.testing.assert_close(rows[600:604].norm(dim=1), torch.full((4,), 1.5), rtol=0, atol=1e-5)
    assert torch.count_nonzero(rows[604]) == 0


@pytest.mark.parametrize("name", ["checkpoint_sparse.pth", "checkpoint_stage1.pth"])
def test_fixture_tensors_match_an_independent_load(official_dir, name):
    path = official_dir / name
    ours = extract_state_dict(read_checkpoint(path), path)
    other = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_INDEPENDENT_PICKLE)["net"]
    assert list(ours) == list(other)
    for key in ours:
        assert torch.equal(ours[key], other[key]), key
    assert torch.equal(ours["identity"], other["identity"])


def test_fixture_key_layout_matches_reference_list(reference_keys, sparse_sd, stage1_sd):
    assert [(k, tuple(v.shape)) for k, v in sparse_sd.items()] == reference_keys["fartrack_sparse"]
    assert [(k, tuple(v.shape)) for k, v in stage1_sd.items()] == reference_keys["fartrack"]
    # stage 1 = the sparse tensors minus 62 keys, shared tensors bitwise equal (fixture README)
    assert set(stage1_sd) < set(sparse_sd)
    assert all(torch.equal(stage1_sd[k], sparse_sd[k]) for k in stage1_sd)


def test_kind_and_template_slots(sparse_sd, stage1_sd, reference_keys):
    assert checkpoint_kind(sparse_sd) == "sparse" and checkpoint_kind(stage1_sd) == "dense"
    assert num_template_slots(sparse_sd) == 5 and num_template_slots(stage1_sd) == 5
    seq = StandIn(reference_keys["fartrack_seq"]).state_dict()
    assert checkpoint_kind(seq) == "dense" and num_template_slots(seq) == 1
    with pytest.raises(CheckpointError, match="identity"):
        num_template_slots({"backbone.norm.weight": torch.ones(3)}, source="x.pth")


# ---------------------------------------------------------------------------------------------------------------
# Strict key check
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name, file_attr", [("fartrack_sparse", "sparse_file"), ("fartrack", "stage1_file")])
def test_load_fixture_into_matching_standin(reference_keys, request, model_name, file_attr):
    path = request.getfixturevalue(file_attr)
    model = _model(reference_keys, model_name)
    notes = load_model_weights(model, path)
    assert notes == []
    expected = extract_state_dict(read_checkpoint(path), path)
    loaded = model.state_dict()
    # same key set and shapes (the stand-in orders buffers after parameters, so order may differ)
    assert sorted((k, tuple(v.shape)) for k, v in loaded.items()) == sorted(reference_keys[model_name])
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_dense_file_into_sparse_model_converts(reference_keys, stage1_file, stage1_sd, caplog):
    model = _model(reference_keys, "fartrack_sparse", seed=3)
    own_pos_embed_z = model.backbone.pos_embed_z.clone()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        notes = load_model_weights(model, stage1_file)
    assert "60 masknorm" in notes[0]
    assert sum("backbone.pos_embed_z " in n for n in notes) == 1
    assert sum("prev_position_embeddings" in n for n in notes) == 1
    assert len(notes) == 3
    loaded = model.state_dict()
    assert torch.equal(loaded["backbone.pos_embed_z"], own_pos_embed_z)  # dead key kept the model's value
    for prefix in ("backbone.blocks.0", "backbone.blocks.11", "backbone.extension.2"):
        for n in (1, 2):
            for leaf in ("weight", "bias"):
                assert torch.equal(loaded[f"{prefix}.masknorm{n}.norm.{leaf}"], stage1_sd[f"{prefix}.norm{n}.{leaf}"])


def test_sparse_file_into_dense_model_hint(reference_keys, sparse_file):
    model = _model(reference_keys, "fartrack")
    with pytest.raises(CheckpointError) as info:
        load_model_weights(model, sparse_file)
    message = str(info.value)
    assert sparse_file.name in message
    assert "62 unexpected" in message
    assert "checkpoint is a FARTrackSparse checkpoint" in message and "fartrack_sparse config" in message
    assert "... and 52 more" in message  # at most 10 keys listed


def test_dense_state_into_sparse_model_without_conversion_hint(reference_keys, stage1_sd, stage1_file):
    model = _model(reference_keys, "fartrack_sparse")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_checked(model, stage1_sd, source=str(stage1_file))
    message = str(info.value)
    assert stage1_file.name in message and "60 missing" in message
    assert "dense FARTrack/FARTrackDistill checkpoint" in message and "from_dense_to_sparse=True" in message


def test_from_dense_to_sparse_needs_sparse_model(reference_keys, stage1_file):
    with pytest.raises(CheckpointError, match=re.escape(stage1_file.name)):
        load_model_weights(_model(reference_keys, "fartrack"), stage1_file, from_dense_to_sparse=True)


def test_identity_row_count_differs(reference_keys, stage1_sd, tmp_path):
    state = OrderedDict(stage1_sd)
    state["identity"] = torch.zeros(1, 2, 192)
    path = save_checkpoint(tmp_path / "FARTrack_two_slots.pth", state, net_type="FARTrack", epoch=1)
    with pytest.raises(CheckpointError) as info:
        load_model_weights(_model(reference_keys, "fartrack"), path)
    message = str(info.value)
    assert "FARTrack_two_slots.pth" in message
    assert "identity: checkpoint (1, 2, 192) vs model (1, 6, 192)" in message
    assert "template number differs" in message and "DATA.TEMPLATE.NUMBER = 1" in message


def test_renamed_key(reference_keys, stage1_sd, tmp_path):
    state = OrderedDict(
        (k.replace("blocks.3.attn.qkv.weight", "blocks.3.attn.qkv_w"), v) for k, v in stage1_sd.items()
    )
    path = save_checkpoint(tmp_path / "renamed.pth", state, net_type="FARTrack", epoch=1)
    with pytest.raises(CheckpointError) as info:
        load_model_weights(_model(reference_keys, "fartrack"), path)
    message = str(info.value)
    assert "renamed.pth" in message
    assert "backbone.blocks.3.attn.qkv.weight (576, 192)" in message
    assert "backbone.blocks.3.attn.qkv_w (576, 192)" in message
    assert "1 missing, 1 unexpected" in message


def test_shape_mismatch(reference_keys, stage1_sd, tmp_path):
    state = OrderedDict(stage1_sd)
    state["backbone.output_bias"] = torch.zeros(600)
    path = save_checkpoint(tmp_path / "bad_shape.pth", state, net_type="FARTrack", epoch=1)
    model = _model(reference_keys, "fartrack")
    before = model.backbone.output_bias.detach().clone()
    with pytest.raises(CheckpointError) as info:
        load_model_weights(model, path)
    assert "bad_shape.pth" in str(info.value)
    assert "backbone.output_bias: checkpoint (600,) vs model (605,)" in str(info.value)
    assert torch.equal(model.backbone.output_bias, before)  # nothing was loaded


def test_missing_dead_keys(reference_keys, stage1_sd):
    model = _model(reference_keys, "fartrack", seed=5)
    own = model.backbone.cls_token.clone()
    state = OrderedDict((k, v) for k, v in stage1_sd.items() if k != "backbone.cls_token")
    notes = load_state_dict_checked(model, state, source="stage1-minus-cls")
    assert len(notes) == 1 and notes[0].startswith("backbone.cls_token (1, 1, 192)")
    assert torch.equal(model.backbone.cls_token, own)
    assert torch.equal(model.backbone.pos_embed_x, stage1_sd["backbone.pos_embed_x"])
    with pytest.raises(CheckpointError, match="stage1-minus-cls.*1 missing"):
        load_state_dict_checked(model, state, source="stage1-minus-cls", allow_missing_dead=False)


def test_norm_keys_dead_only_in_sparse_model(reference_keys, sparse_sd, stage1_sd):
    key = "backbone.blocks.4.norm2.bias"
    sparse_state = OrderedDict((k, v) for k, v in sparse_sd.items() if k != key)
    notes = load_state_dict_checked(_model(reference_keys, "fartrack_sparse"), sparse_state, source="s")
    assert len(notes) == 1 and notes[0].startswith(key)
    dense_state = OrderedDict((k, v) for k, v in stage1_sd.items() if k != key)
    with pytest.raises(CheckpointError, match="1 missing"):
        load_state_dict_checked(_model(reference_keys, "fartrack"), dense_state, source="d")


def test_dead_key_patterns():
    assert len(DEAD_KEY_PATTERNS) == 5
    for key in ("backbone.cls_token", "backbone.pos_embed", "backbone.pos_embed_z", "backbone.pos_embed_z1",
                "backbone.prev_position_embeddings.weight"):
        assert is_dead_key(key, sparse=False) and is_dead_key(key, sparse=True)
    for key in ("backbone.pos_embed_z0", "backbone.pos_embed_x", "identity", "backbone.norm.weight",
                "backbone.blocks.0.masknorm1.norm.weight", "backbone.position_embeddings.weight"):
        assert not is_dead_key(key, sparse=True) and not is_dead_key(key, sparse=False)
    assert is_dead_key("backbone.extension.2.norm1.weight", sparse=True)
    assert not is_dead_key("backbone.extension.2.norm1.weight", sparse=False)


def test_dtype_cast_is_noted(reference_keys, stage1_sd):
    state = OrderedDict(stage1_sd)
    state["backbone.output_bias"] = state["backbone.output_bias"].double()
    notes = load_state_dict_checked(_model(reference_keys, "fartrack"), state, source="x")
    assert notes == ["backbone.output_bias: cast from torch.float64 to torch.float32"]


def test_no_common_keys_hint(reference_keys):
    with pytest.raises(CheckpointError, match="no key in common"):
        load_state_dict_checked(_model(reference_keys, "fartrack"), {"foo.weight": torch.zeros(2)}, source="x")


# ---------------------------------------------------------------------------------------------------------------
# dense -> sparse conversion
# ---------------------------------------------------------------------------------------------------------------


def test_dense_to_sparse_adds_60_keys_in_reference_order(stage1_sd, reference_keys):
    converted = dense_to_sparse_state_dict(stage1_sd)
    added = [k for k in converted if k not in stage1_sd]
    assert len(added) == 60 and all(".masknorm" in k for k in added)
    assert all(k in converted for k in stage1_sd)  # originals kept
    sparse_order = [k for k, _ in reference_keys["fartrack_sparse"]
                    if k not in ("backbone.pos_embed_z", "backbone.prev_position_embeddings.weight")]
    assert list(converted) == sparse_order
    key = "backbone.extension.1.masknorm2.norm.weight"
    assert torch.equal(converted[key], stage1_sd["backbone.extension.1.norm2.weight"])
    assert converted[key].data_ptr() != stage1_sd["backbone.extension.1.norm2.weight"].data_ptr()
    assert "backbone.masknorm" not in " ".join(converted)  # top-level backbone.norm untouched


def test_dense_to_sparse_is_idempotent(sparse_sd):
    converted = dense_to_sparse_state_dict(sparse_sd)
    assert list(converted) == list(sparse_sd)
    assert all(converted[k] is sparse_sd[k] for k in sparse_sd)


# ---------------------------------------------------------------------------------------------------------------
# extract_state_dict
# ---------------------------------------------------------------------------------------------------------------


def test_extract_state_dict_layouts():
    tensors = OrderedDict([("a.weight", torch.ones(2)), ("b", torch.zeros(1))])
    assert list(extract_state_dict({"net": tensors, "epoch": 3}, "x.pth")) == ["a.weight", "b"]
    assert list(extract_state_dict({"model": tensors}, "mae.pth")) == ["a.weight", "b"]
    assert list(extract_state_dict(dict(tensors), "bare.pth")) == ["a.weight", "b"]
    ddp = OrderedDict(("module." + k, v) for k, v in tensors.items())
    assert list(extract_state_dict({"net": ddp}, "ddp.pth")) == ["a.weight", "b"]
    mixed = OrderedDict([("module.a", torch.ones(1)), ("b", torch.ones(1))])
    assert list(extract_state_dict(mixed, "mixed.pth")) == ["module.a", "b"]


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ({"net": {}}, "no tensors found"),
        ({"epoch": 1, "note": "x"}, "no tensors found"),
        ({"net": {"a": 1.0}}, "non-tensor"),
        ({"net": [torch.ones(1)]}, "expected a state dict"),
        ([torch.ones(1)], "expected a dict"),
    ],
)
def test_extract_state_dict_errors(obj, fragment):
    with pytest.raises(CheckpointError, match=fragment) as info:
        extract_state_dict(obj, "some/file.pth")
    assert "some/file.pth" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Unreadable files
# ---------------------------------------------------------------------------------------------------------------


def _expect_error(path: Path, fragment: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, message
    assert fragment in message, message
    assert "\n" not in message and "Traceback" not in message
    return info.value


@pytest.mark.parametrize("where", ["1", "64", "4096", "third", "half", "end-4096", "end-22", "end-1"])
def test_truncated_fixture(stage1_file, tmp_path, where):
    data = stage1_file.read_bytes()
    size = len(data)
    offsets = {"third": size // 3, "half": size // 2, "end-4096": size - 4096, "end-22": size - 22, "end-1": size - 1}
    cut = offsets[where] if where in offsets else int(where)
    path = tmp_path / f"cut_{where}.pth"
    path.write_bytes(data[:cut])
    _expect_error(path, "not a PyTorch checkpoint (truncated or corrupt archive")


@pytest.mark.parametrize("cut", [10, 200, -1])
def test_truncated_legacy_format(tmp_path, cut):
    full = tmp_path / "legacy_full.pth"
    torch.save({"net": {"w": torch.arange(1000.0)}}, full, _use_new_zipfile_serialization=False)
    assert torch.equal(extract_state_dict(read_checkpoint(full), full)["w"], torch.arange(1000.0))
    path = tmp_path / "legacy_cut.pth"
    path.write_bytes(full.read_bytes()[:cut])
    _expect_error(path, "not a")


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("epoch: 15\nnet: FARTrackSparse\n")
    _expect_error(path, "looks like a text file")


def test_jpeg_file(tmp_path):
    path = tmp_path / "frame.pth"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(2000))
    _expect_error(path, "looks like a JPEG image")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pth"
    data = bytearray(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy())
    data[0] = 0x07  # not a zip / pickle / known magic
    path.write_bytes(bytes(data))
    _expect_error(path, "not a PyTorch checkpoint")


def test_random_bytes_after_pickle_magic(tmp_path):
    path = tmp_path / "random_pickle.pth"
    path.write_bytes(b"\x80\x02" + bytes(range(256)) * 8)
    _expect_error(path, "not a")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    _expect_error(path, "empty file")


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.pth", "file not found")


def test_directory(tmp_path):
    folder = tmp_path / "a_folder.pth"
    folder.mkdir()
    _expect_error(folder, "is a directory")


def test_zip_that_is_not_a_torch_archive(tmp_path):
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    _expect_error(path, "not a PyTorch checkpoint (no data.pkl record)")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_not_loaded(tmp_path):
    path = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    _expect_error(path, "TorchScript archive")


def test_non_dict_top_level(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.ones(3), path)
    _expect_error(path, "top-level object is a Tensor")


def test_checkpoint_error_is_value_error_and_pickles():
    err = CheckpointError("/x/y.pth", "broken")
    assert isinstance(err, ValueError)
    assert str(err) == "checkpoint '/x/y.pth': broken"
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.path == "/x/y.pth"


# ---------------------------------------------------------------------------------------------------------------
# Malicious pickles
# ---------------------------------------------------------------------------------------------------------------


class _SystemCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _ExecCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _EvalOnSetstate:
    """An object whose reconstruction would call eval through a second global."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


@pytest.mark.parametrize("payload", [_SystemCall, _ExecCall, _EvalOnSetstate])
@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_not_executed(tmp_path, caplog, payload, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    weights = OrderedDict([("w", torch.arange(6.0).reshape(2, 3))])
    torch.save({"net": weights, "evil": payload(marker), "nested": [payload(marker)]}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    assert not marker.exists()
    # control: an unrestricted load really runs the payload (it only touches a file in tmp_path)
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()

    with caplog.at_level(logging.INFO, logger=LOGGER):
        ckpt = read_checkpoint(path)
    assert not marker.exists()
    evil = ckpt["evil"]
    assert isinstance(evil, PlaceholderObject) and isinstance(ckpt["nested"][0], PlaceholderObject)
    assert evil.placeholder_for in ("posix.system", "nt.system", "builtins.exec", "builtins.eval")
    assert evil.placeholder_for in caplog.text
    assert torch.equal(extract_state_dict(ckpt, path)["w"], weights["w"])

    model = StandIn([("w", (2, 3))])
    assert load_model_weights(model, path) == []
    assert torch.equal(model.w, weights["w"]) and not marker.exists()


def test_malicious_net_entry_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_net.pth"
    torch.save({"net": {"w": torch.ones(1), "x": _SystemCall(marker)}}, path)
    with pytest.raises(CheckpointError, match="non-tensor"):
        extract_state_dict(read_checkpoint(path), path)
    assert not marker.exists()


def test_allow_list_is_explicit():
    substituted: dict[str, type] = {}
    module = ckpt_mod._make_restricted_pickle_module(substituted)
    unpickler = module.Unpickler(__import__("io").BytesIO(b""))
    assert unpickler.find_class("collections", "OrderedDict") is collections.OrderedDict
    assert unpickler.find_class("torch", "float16") is torch.float16
    assert unpickler.find_class("torch", "device") is torch.device
    assert unpickler.find_class("__builtin__", "set") is set
    for module_name, name in [("os", "system"), ("builtins", "getattr"), ("builtins", "eval"), ("torch", "load"),
                              ("torch._utils", "_rebuild_from_type_v2"), ("subprocess", "Popen"), ("torch", "_C")]:
        cls = unpickler.find_class(module_name, name)
        assert issubclass(cls, PlaceholderObject) and cls.placeholder_for == f"{module_name}.{name}"
        instance = cls("rm -rf /", shell=True)
        instance.__setstate__({"x": 1})
        instance["k"] = 2
        instance.append(3)
        assert instance.placeholder_args == ("rm -rf /",) and instance.placeholder_state == {"x": 1}
    with pytest.raises(pickle.UnpicklingError):
        unpickler.find_class("_codecs", "encode")("abc", "rot13")


# ---------------------------------------------------------------------------------------------------------------
# save_checkpoint
# ---------------------------------------------------------------------------------------------------------------


def _assert_only(folder: Path, names: list[str]) -> None:
    assert sorted(os.listdir(folder)) == sorted(names)


def test_save_round_trip_weights_only(sparse_sd, tmp_path, caplog):
    extra = {
        "actor_type": "FARTrackSparseActor",
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
                      "param_groups": [{"lr": 4e-6, "betas": (0.9, 0.999), "params": [0, 1], "fused": None,
                                        "amsgrad": False}]},
        "config": OrderedDict([("MODEL", {"BINS": 300}), ("nan", float("nan"))]),
    }
    path = save_checkpoint(tmp_path / "out" / "FARTrackSparse_ep0015.pth.tar", sparse_sd, net_type="FARTrackSparse",
                           epoch=15, extra=extra)
    assert path == tmp_path / "out" / "FARTrackSparse_ep0015.pth.tar"
    _assert_only(path.parent, [path.name])
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw)[:3] == ["epoch", "net_type", "net"]
    assert raw["epoch"] == 15 and raw["net_type"] == "FARTrackSparse" and raw["actor_type"] == "FARTrackSparseActor"
    assert list(raw["net"]) == list(sparse_sd)
    assert all(torch.equal(raw["net"][k], sparse_sd[k]) for k in sparse_sd)
    assert raw["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(raw["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert raw["config"]["MODEL"] == {"BINS": 300}
    # our loader reads it through the weights-only path (no placeholders)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        again = extract_state_dict(read_checkpoint(path), path)
    assert "placeholder" not in caplog.text
    assert all(torch.equal(again[k], sparse_sd[k]) for k in sparse_sd)


def test_save_from_module_and_reload(reference_keys, tmp_path):
    model = _model(reference_keys, "fartrack_sparse", seed=1)
    path = save_checkpoint(tmp_path / "m.pth", model, net_type="FARTrackSparse", epoch=0)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert [(k, tuple(v.shape)) for k, v in raw["net"].items()] == sorted(
        reference_keys["fartrack_sparse"], key=lambda kv: list(model.state_dict()).index(kv[0]))
    assert all(not isinstance(v, nn.Parameter) and not v.requires_grad for v in raw["net"].values())
    other = _model(reference_keys, "fartrack_sparse", seed=2)
    assert load_model_weights(other, path) == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_save_overwrites_atomically(tmp_path, stage1_sd, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pth", {"w": torch.ones(2)}, net_type="FARTrack", epoch=1)
    save_checkpoint(path, {"w": torch.full((2,), 2.0)}, net_type="FARTrack", epoch=2)
    _assert_only(tmp_path, ["c.pth"])
    assert torch.load(path, weights_only=True)["epoch"] == 2

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"w": torch.zeros(2)}, net_type="FARTrack", epoch=3)
    monkeypatch.undo()
    _assert_only(tmp_path, ["c.pth"])  # no temp file left behind, old file intact
    assert torch.load(path, weights_only=True)["epoch"] == 2


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize(
    "extra, where",
    [
        ({"settings": object()}, "extra['settings']"),
        ({"stats": {"train": [1, {"meter": types.SimpleNamespace(avg=1.0)}]}}, "extra['stats']['train'][1]['meter']"),
        ({"ids": {1, 2}}, "extra['ids']"),
        ({"device": torch.device("cpu")}, "extra['device']"),
        ({"point": Point(1, 2)}, "extra['point']"),
        ({"fn": len}, "extra['fn']"),
        ({"path": Path("/tmp")}, "extra['path']"),
        ({"d": {(1, 2): 3}}, "extra['d']"),
    ],
)
def test_save_rejects_non_plain_extra(tmp_path, extra, where):
    with pytest.raises(TypeError) as info:
        save_checkpoint(tmp_path / "x.pth", {"w": torch.ones(1)}, net_type="FARTrack", epoch=0, extra=extra)
    assert where in str(info.value)
    assert not (tmp_path / "x.pth").exists()


def test_save_rejects_numpy_scalar(tmp_path):
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match=r"extra\['lr'\].*numpy"):
        save_checkpoint(tmp_path / "x.pth", {"w": torch.ones(1)}, net_type="FARTrack", epoch=0,
                        extra={"lr": np.float64(1e-4)})


def test_save_argument_checks(tmp_path):
    sd = {"w": torch.ones(1)}
    with pytest.raises(ValueError, match="net"):
        save_checkpoint(tmp_path / "x.pth", sd, net_type="FARTrack", epoch=0, extra={"net": {}})
    with pytest.raises(TypeError, match="epoch"):
        save_checkpoint(tmp_path / "x.pth", sd, net_type="FARTrack", epoch=1.0)
    with pytest.raises(TypeError, match="net_type"):
        save_checkpoint(tmp_path / "x.pth", sd, net_type=None, epoch=1)
    with pytest.raises(TypeError, match="not a tensor"):
        save_checkpoint(tmp_path / "x.pth", {"w": 1.0}, net_type="FARTrack", epoch=1)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="cycle"):
        save_checkpoint(tmp_path / "x.pth", sd, net_type="FARTrack", epoch=1, extra={"c": cyclic})
    _assert_only(tmp_path, [])
