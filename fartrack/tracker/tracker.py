"""The online FARTrack tracker: ``initialize(frame, box)`` once, then ``track(frame) -> box`` per frame.

Per frame: crop the search region around the current state, run the network with the scheduled template
slots, decode the 4 coordinate tokens, map them back to the image and clip. The frame's crop at the new
box joins the template memory. In the sparse model each template gets a keep-mask once, the first time it
sits in the newest slot, and carries it whenever it is sampled into an older slot later.

Network modes:

- ``fast`` (the default, for sparse and dense checkpoints): pruned template tokens are dropped from the
  sequence, attention runs through PyTorch's fused kernel, the keep-mask attention row(s) are computed on
  their own, LayerNorms are ``F.layer_norm`` and the last layer computes the command tokens only. Equal to
  the reference within float rounding (logits ~1e-5, boxes ~1e-4 px; keep-masks equal except on exact ties).
- ``dense`` (stage-1/distill checkpoints) and ``masked`` (sparse checkpoints): the reference's computation,
  op for op (all tokens present, pruned ones masked out); bitwise with the released code.
- ``removed``: pruned tokens dropped, otherwise the reference's explicit ops (the foundation's first
  token-removal path, kept for comparison).

Each template is patch-embedded once, when it enters the memory. The memory holds only templates the
schedule can still select, thinned to ``TrackerParams.template_cap`` (see :class:`TemplateStore`), so it
stays flat on long videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from fartrack.models.encoder import FARTrackNet
from fartrack.models.sparsify import SparsifyConfig, keep_from_scores, plan_probe, template_scores
from fartrack.tracker.crop import crop_around_box, normalize_crop, normalize_crop_into, prepare_frame, validate_box
from fartrack.models.vocab import decode_argmax, decode_mean, decode_soft
from fartrack.tracker.geometry import clip_box, map_box_to_image
from fartrack.tracker.schedule import DEFAULT_TEMPLATE_CAP, TemplateSchedule, TemplateStore

DECODERS = {"argmax": decode_argmax, "mean": decode_mean, "soft": decode_soft}
MODES = ("auto", "fast", "dense", "masked", "removed")


@dataclass
class TrackerParams:
    """Tracker settings (defaults = the reference sparse tracker)."""

    template_factor: float = 2.0
    template_size: int = 112
    search_factor: float = 4.0
    search_size: int = 224
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    decode: str = "mean"
    schedule: str = "exponential"
    warmup: str = "mode1"
    depth: Optional[int] = None
    mode: str = "auto"
    sparsify: SparsifyConfig = field(default_factory=SparsifyConfig)
    clip_margin: int = 10
    template_cap: Optional[int] = DEFAULT_TEMPLATE_CAP  # None: every selectable template (reference)

    def __post_init__(self) -> None:
        if self.decode not in DECODERS:
            raise ValueError(f"decode must be one of {sorted(DECODERS)}, got {self.decode!r}")
        if self.mode not in MODES:
            raise ValueError(f"tracker mode must be one of {MODES}, got {self.mode!r}")


@dataclass
class _StoredTemplate:
    """One template in the memory: its embedded tokens (1, tz, C) and, once computed, its keep-mask."""

    tokens: Optional[Tensor]  # (1, tz, C); dropped in fast mode once kept_tokens exist (templates after T_0)
    keep: Optional[Tensor] = None  # (tz,) bool
    kept_index: Optional[Tensor] = None  # (kept,) long, for the removed-token form
    kept_tokens: Optional[Tensor] = None  # (1, kept, C): tokens[:, kept_index], gathered once (fast mode)


class FARTracker:
    """Single-object tracker around a :class:`FARTrackNet` (built and loaded once, reused per sequence)."""

    def __init__(self, net: FARTrackNet, params: Optional[TrackerParams] = None, backend=None) -> None:
        """``backend``: None (PyTorch) or a runtime such as :class:`fartrack.export.backend.OnnxRuntimeBackend`
        that runs the template embedding and the per-frame network (``net`` then only supplies the config)."""
        self.net = net.eval()
        self.backend = backend
        self.params = params or TrackerParams()
        cfg = net.cfg
        mode = self.params.mode
        if mode == "auto":
            mode = "fast"
        if mode in ("masked", "removed") and not cfg.sparse:
            raise ValueError(f"tracker mode {mode!r} needs a sparse model (MODEL.SPARSE.ENABLED); this one is dense")
        if backend is not None and mode != "fast":
            raise ValueError(f"a runtime backend runs the exported fast network only; tracker mode {mode!r} needs torch")
        self.mode = mode
        self.depth = cfg.depth if self.params.depth is None else int(self.params.depth)
        if not 1 <= self.depth <= cfg.depth:
            raise ValueError(f"depth must be in 1..{cfg.depth}, got {self.depth}")
        if self.params.template_size != cfg.template_size or self.params.search_size != cfg.search_size:
            raise ValueError(
                f"tracker crop sizes ({self.params.template_size}, {self.params.search_size}) differ from the "
                f"network's ({cfg.template_size}, {cfg.search_size})"
            )
        self.num_slots = cfg.num_templates
        self.decoder = DECODERS[self.params.decode]
        self.device = next(net.parameters()).device
        self.num_pruned = self.params.sparsify.num_pruned(cfg.template_tokens)
        self._tz = cfg.template_tokens
        self.last_logits: Optional[Tensor] = None
        self.last_keep: Optional[Tensor] = None
        self.last_slots: list[int] = []
        self._token_buffers: dict[int, Tensor] = {}
        self._probe_plans: dict[tuple[int, int], object] = {}
        # On the CPU, crops are normalised in numpy into reused arrays (bitwise equal to normalize_crop): no
        # per-frame allocation and no PyTorch thread-pool wake-up. The runtime backend takes NCHW arrays (no
        # layout copy before the graph); PyTorch gets normalize_crop's own channels-last view of an HWC array.
        self._crop_arrays: Optional[dict[str, np.ndarray]] = None
        if backend is not None or self.device.type == "cpu":
            p = self.params
            shape = (lambda n: (1, 3, n, n)) if backend is not None else (lambda n: (n, n, 3))
            self._crop_arrays = {
                "search": np.empty(shape(p.search_size), dtype=np.float32),
                "template": np.empty(shape(p.template_size), dtype=np.float32),
            }
            self._mean_array = np.asarray(p.mean, dtype=np.float32).reshape(3)
            self._std_array = np.asarray(p.std, dtype=np.float32).reshape(3)
        with torch.inference_mode():
            self._commands = net.command_tokens(1).clone()
            self._search_bias = (net.identity[:, -1:, :], net.backbone.pos_embed_x)

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def initialize(self, image: np.ndarray, init_box: Sequence[float]) -> None:
        """Start a sequence on ``image`` (H, W, 3 RGB uint8; grayscale is replicated) with box [x, y, w, h]."""
        image = prepare_frame(image)
        box = validate_box(init_box, image.shape[:2], what="init box")
        self.schedule = TemplateSchedule(self.num_slots, self.params.schedule, self.params.warmup)
        self.memory = TemplateStore(self.schedule, self.params.template_cap)
        self.memory.reset(self._make_template(image, box))
        self.frame_id = 0
        self.state = [float(v) for v in box]
        self.history = [list(self.state) for _ in range(max(self.net.cfg.prenum, 0))]

    @torch.inference_mode()
    def track(self, image: np.ndarray) -> list[float]:
        """Track one frame; returns the new box [x, y, w, h] in image pixels (floats)."""
        if not hasattr(self, "memory"):
            raise RuntimeError("call initialize(frame, box) before track(frame)")
        image = prepare_frame(image)
        self.frame_id += 1
        p = self.params
        crop, resize_factor = crop_around_box(image, self.state, p.search_factor, p.search_size)
        search = self._normalize(crop, "search")
        slots = self.schedule.slots(self.num_stored)
        logits, scores = self.run_network(slots, search, resize_factor)
        box_norm = self.decode(logits[0])
        box = map_box_to_image(box_norm, self.state, resize_factor, p.search_size)
        box = clip_box(box, image.shape[:2], margin=p.clip_margin)
        newest = self.memory[slots[-1]]
        if scores is not None and newest.keep is None:
            newest.keep = keep_from_scores(scores, self.num_pruned)[0]
            newest.kept_index = torch.nonzero(newest.keep).flatten()
            if self.mode == "fast" and self.backend is None:
                newest.kept_tokens = newest.tokens[:, newest.kept_index]
                if slots[-1] != 0:  # a template other than T_0 is never the newest slot again: drop the full form
                    newest.tokens = None
        self.state = box
        self.memory.add(self._make_template(image, box))
        if self.history:
            self.history = self.history[1:] + [list(box)]
        self.last_logits, self.last_slots = logits, slots
        return list(box)

    def decode(self, logits: Tensor) -> Tensor:
        """Logits (4, V) -> normalised xyxy crop box (4,), with the configured rule, one coordinate at a time.

        Bitwise equal to decoding the 4 rows at once, but a (4, V) softmax opens a multi-threaded PyTorch
        region whose OpenMP workers keep spinning afterwards, on the cores a runtime backend needs for the
        next frame (measured with ONNX Runtime at 2 threads: tiny 44.9 ms per frame instead of 39.8).
        """
        cfg = self.net.cfg
        return torch.stack([self.decoder(row, cfg.bins, cfg.range) for row in logits])

    # ------------------------------------------------------------------ internals
    def _make_template(self, image: np.ndarray, box: Sequence[float]) -> _StoredTemplate:
        p = self.params
        crop, _ = crop_around_box(image, box, p.template_factor, p.template_size)
        return _StoredTemplate(self.embed_template(self._normalize(crop, "template")))

    def _normalize(self, crop: np.ndarray, kind: str) -> Tensor:
        """Normalised crop (1, 3, H, W) for ``kind`` (``search`` / ``template``). On the CPU the result is a view
        of a reused array, overwritten by the next crop of the same kind (nothing keeps it past its use)."""
        p = self.params
        if self._crop_arrays is None:
            return normalize_crop(crop, p.mean, p.std, self.device)
        out = normalize_crop_into(crop, self._crop_arrays[kind], self._mean_array, self._std_array)
        if out.ndim == 4:
            return torch.from_numpy(out)
        return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)

    def embed_template(self, template: Tensor) -> Tensor:
        """Normalised template crop (1, 3, Z, Z) -> cached tokens (1, tz, C), on the tracker's backend."""
        if self.backend is not None:
            return self.backend.embed_template(template)
        return self.net.embed_templates(template)

    @property
    def num_stored(self) -> int:
        """Templates stored so far in this sequence (``T_0 .. T_{n-1}``), freed or thinned ones included."""
        return self.memory.count

    def run_network(self, slots: list[int], search: Tensor, resize_factor: float) -> tuple[Tensor, Optional[Tensor]]:
        """One network call with the stored templates ``slots`` and a normalised search crop.

        Returns the logits (1, 4, V) and, when the newest slot's template has no keep-mask yet, its
        token-importance scores (1, tz). Changes no tracker state (it only records ``last_keep``).
        """
        if self.backend is not None:
            return self._run_backend(slots, search, resize_factor)
        if self.mode == "fast":
            return self._run_fast(slots, search, resize_factor)
        net, tz = self.net, self._tz
        stored = [self.memory[k] for k in slots]
        slot_tokens = net.add_template_identity(torch.cat([s.tokens for s in stored], dim=0).unsqueeze(0))
        parts: list[Tensor] = []
        keep_parts: list[Tensor] = []
        last = len(slots) - 1
        for i, template in enumerate(stored):
            tokens = slot_tokens[:, i * tz : (i + 1) * tz]
            pruned = i != last and template.keep is not None
            if self.mode == "removed" and pruned:
                tokens = tokens[:, template.kept_index]
            elif self.mode == "masked":
                keep_parts.append(template.keep if pruned else torch.ones(tz, dtype=torch.bool, device=self.device))
            parts.append(tokens)
        search_start = sum(t.shape[1] for t in parts)
        parts.append(net.embed_search(search))
        if net.cfg.prenum > 0:
            parts.append(net.trajectory_tokens(self._trajectory_ids(resize_factor)))
        command_start = sum(t.shape[1] for t in parts)
        parts.append(net.command_tokens(1))
        tokens = torch.cat(parts, dim=1)
        key_keep = None
        if self.mode == "masked":
            rest = torch.ones(tokens.shape[1] - len(slots) * tz, dtype=torch.bool, device=self.device)
            key_keep = torch.cat(keep_parts + [rest]).unsqueeze(0)
            self.last_keep = key_keep
        probe = None
        if self.mode != "dense" and stored[-1].keep is None:
            newest_start = search_start - tz
            probe = plan_probe(
                self.params.sparsify, search_start, net.cfg.search_grid, slice(newest_start, search_start),
                command_start, self.device,
            )
        out = net.encode(tokens, self.depth, key_keep, None if probe is None else probe.rows)
        scores = None if probe is None else template_scores(out.probe_attention, probe)
        return out.logits, scores

    def _run_fast(self, slots: list[int], search: Tensor, resize_factor: float) -> tuple[Tensor, Optional[Tensor]]:
        """:meth:`run_network` in ``fast`` mode: the sequence is written into a reused buffer, pruned tokens
        never enter it, and the encoder is :meth:`FARTrackNet.encode_inference`."""
        net, tz = self.net, self._tz
        stored = [self.memory[k] for k in slots]
        last = len(slots) - 1
        sources = [
            t.kept_tokens if (i != last and t.kept_tokens is not None) else t.tokens for i, t in enumerate(stored)
        ]
        search_start = sum(src.shape[1] for src in sources)
        extra = self.net.cfg.prenum * 4
        total = search_start + net.cfg.search_tokens + extra + 4
        tokens = self._token_buffers.get(total)
        if tokens is None:
            tokens = torch.empty(1, total, net.cfg.embed_dim, device=self.device)
            tokens[:, -4:] = self._commands  # constant: written once per buffer
            self._token_buffers[total] = tokens
        identity = net.identity
        start = 0
        for i, src in enumerate(sources):
            stop = start + src.shape[1]
            torch.add(src, identity[:, i : i + 1], out=tokens[:, start:stop])
            start = stop
        identity_x, pos_x = self._search_bias
        search_tokens = tokens[:, start : start + net.cfg.search_tokens]
        torch.add(net.backbone.patch_embed(search), identity_x, out=search_tokens)
        search_tokens.add_(pos_x)  # (conv + identity) + pos, the inference order of embed_search
        command_start = total - 4
        if extra:
            tokens[:, command_start - extra : command_start] = net.trajectory_tokens(self._trajectory_ids(resize_factor))
        probe = None
        if net.cfg.sparse and stored[-1].keep is None:
            key = (search_start, command_start)
            probe = self._probe_plans.get(key)
            if probe is None:
                probe = plan_probe(
                    self.params.sparsify, search_start, net.cfg.search_grid, slice(search_start - tz, search_start),
                    command_start, self.device,
                )
                self._probe_plans[key] = probe
        logits, attention = net.encode_inference(tokens, self.depth, None if probe is None else probe.rows)
        scores = None if probe is None else template_scores(attention, probe)
        return logits, scores

    def _run_backend(self, slots: list[int], search: Tensor, resize_factor: float) -> tuple[Tensor, Optional[Tensor]]:
        """:meth:`run_network` through the runtime backend: cached tokens and keep-masks are written into
        reused input arrays (static shapes); pruning happens inside the exported graph."""
        tz, cfg = self._tz, self.net.cfg
        if not hasattr(self, "_feeds"):
            slot_tokens = np.zeros((1, self.num_slots * tz, cfg.embed_dim), dtype=np.float32)
            self._feeds = {"slot_tokens": slot_tokens}
            if cfg.sparse:
                self._feeds["slot_keep"] = np.ones(self.num_slots * tz, dtype=np.bool_)
        stored = [self.memory[k] for k in slots]
        last = len(slots) - 1
        keep = self._feeds.get("slot_keep")
        slot_tokens = self._feeds["slot_tokens"]
        for i, template in enumerate(stored):  # numpy copies: no PyTorch op (or thread-pool wake-up) per frame
            slot_tokens[:, i * tz : (i + 1) * tz] = template.tokens.numpy()
            if keep is not None:
                pruned = i != last and template.keep is not None
                keep[i * tz : (i + 1) * tz] = template.keep.numpy() if pruned else True
        self._feeds["search"] = np.ascontiguousarray(search.numpy())
        if cfg.prenum > 0:
            self._feeds["trajectory_ids"] = self._trajectory_ids(resize_factor).numpy()
        logits, scores = self.backend.run(self._feeds)
        return logits, (scores if stored[-1].keep is None else None)

    def _trajectory_ids(self, resize_factor: float) -> Tensor:
        """Previous boxes as coordinate tokens in the current search crop (paper variant, ``PRENUM`` > 0)."""
        size = self.params.search_size
        vocab = self.net.vocab
        cx, cy = self.state[0] + self.state[2] / 2, self.state[1] + self.state[3] / 2
        values = []
        for x, y, w, h in self.history:
            bcx = (size - 1) / 2 + (x + w / 2 - cx) * resize_factor
            bcy = (size - 1) / 2 + (y + h / 2 - cy) * resize_factor
            bw, bh = w * resize_factor, h * resize_factor
            values += [(bcx - bw / 2) / size, (bcy - bh / 2) / size, (bcx + bw / 2) / size, (bcy + bh / 2) / size]
        coords = torch.tensor(values, dtype=torch.float32, device=self.device).clamp(-0.5, 1.5)
        ids = ((coords + 0.5) * (vocab.bins - 1)).long().clamp(0, vocab.num_coordinate_bins - 1)
        return ids.unsqueeze(0)


def tracker_params_from(
    cfg, depth: Optional[int] = None, mode: str = "auto", template_cap: Optional[int] = DEFAULT_TEMPLATE_CAP
) -> TrackerParams:
    """Tracker settings of a resolved config (``TEST``, ``DATA``, ``MODEL``); ``depth`` overrides ``MODEL.LAYERS``.

    ``template_cap`` bounds the template memory (``None``: unbounded, as the reference)."""
    from fartrack.models.build import sparsify_config_from

    test, data, model = cfg["TEST"], cfg["DATA"], cfg["MODEL"]
    return TrackerParams(
        template_factor=float(test["TEMPLATE_FACTOR"]),
        template_size=int(test["TEMPLATE_SIZE"]),
        search_factor=float(test["SEARCH_FACTOR"]),
        search_size=int(test["SEARCH_SIZE"]),
        mean=tuple(data["MEAN"]),
        std=tuple(data["STD"]),
        decode=model["DECODE"],
        schedule=test["SCHEDULE"],
        warmup=test["WARMUP"],
        depth=int(model["LAYERS"]) if depth is None else int(depth),
        mode=mode,
        sparsify=sparsify_config_from(cfg),
        template_cap=template_cap,
    )
