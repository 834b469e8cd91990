"""The coordinate-token vocabulary and box decoding.

Ids ``0 .. bins*range - 1`` are coordinate bins covering normalised crop coordinates
``[-(range-1)/2, (range+1)/2)`` (``[-0.5, 1.5)`` for the reference's 300 bins over 2 crop widths); the next
four ids are the x0, y0, x1, y1 command tokens, then one padding id: V = bins*range + 5 = 605.

Two reference quirks are kept for parity: the argmax decode divides by ``bins - 1`` (299) while the
soft-argmax grid steps by ``1/bins`` (1/300), and the argmax runs over all ``V`` logits, special ids included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class Vocabulary:
    """Token ids of a FARTrack model (reference: 300 bins over a range of 2 crop widths, V = 605).

    Ids ``0 .. bins*range-1`` are coordinate bins covering normalised crop coordinates [-0.5, 1.5);
    the next four ids are the x0, y0, x1, y1 command tokens, then one padding id.
    """

    bins: int = 300
    range: int = 2

    @property
    def num_coordinate_bins(self) -> int:
        return self.bins * self.range

    @property
    def size(self) -> int:
        return self.num_coordinate_bins + 5

    @property
    def command_ids(self) -> tuple[int, int, int, int]:
        first = self.num_coordinate_bins
        return (first, first + 1, first + 2, first + 3)

    @property
    def padding_id(self) -> int:
        return self.num_coordinate_bins + 4


def vocab_size(bins: int = 300, range_: int = 2) -> int:
    """``bins * range_`` coordinate ids + 4 command tokens + 1 padding id (605 for the reference)."""
    return Vocabulary(bins, range_).size


def _offset(range_: int) -> float:
    """Normalised coordinate of id 0: -0.5 for range 2 (coordinates span ``range_`` crop widths)."""
    return 0.5 * (range_ - 1)


@lru_cache(maxsize=16)
def _grid_cpu(bins: int, range_: int) -> torch.Tensor:
    offset = _offset(range_)
    step = 1.0 / bins
    values = [-offset + k * step for k in range(bins * range_)]  # python doubles, then one cast
    with torch.inference_mode(False):  # the cached tensor must stay usable in autograd (training losses)
        return torch.tensor(values, dtype=torch.float64).to(torch.float32)


def coordinate_grid(bins: int = 300, range_: int = 2, device=None) -> torch.Tensor:
    """The soft-argmax grid ``g_k = float32(-0.5 + k * (1/bins))``, ``k = 0 .. bins*range_ - 1``.

    Computed in double and cast once, as the reference does (600 values for the reference constants).
    """
    grid = _grid_cpu(int(bins), int(range_))
    return grid if device is None else grid.to(device)


def _check_logits(logits: torch.Tensor, bins: int, range_: int) -> None:
    expected = vocab_size(bins, range_)
    if logits.shape[-1] != expected:
        raise ValueError(
            f"logits must have {expected} entries in the last dimension (bins={bins}, range={range_}), "
            f"got shape {tuple(logits.shape)}"
        )


def decode_argmax(logits: torch.Tensor, bins: int = 300, range_: int = 2) -> torch.Tensor:
    """Stage-1 / distill decode: ``argmax / (bins - 1) - 0.5`` over all ``V`` logits, float32 ``(...)``.

    No half-bin offset (reference quirk). The argmax is taken on the logits; the reference takes it on
    their softmax, which can only differ when the top two logits are within float rounding of each other.
    """
    _check_logits(logits, bins, range_)
    ids = logits.argmax(dim=-1)
    return ids / (bins - 1) - _offset(range_)


def decode_soft(logits: torch.Tensor, bins: int = 300, range_: int = 2) -> torch.Tensor:
    """Soft-argmax: ``sum_k softmax(logits[..., :bins*range_])_k * g_k``, float32 ``(...)``.

    An elementwise product followed by a sum (a matmul/dot is not bitwise equal to the reference).
    """
    _check_logits(logits, bins, range_)
    n_coords = bins * range_
    probs = torch.softmax(logits[..., :n_coords], dim=-1)
    grid = coordinate_grid(bins, range_, device=logits.device)
    return (probs * grid).sum(dim=-1)


def decode_mean(logits: torch.Tensor, bins: int = 300, range_: int = 2) -> torch.Tensor:
    """Seq / sparse decode: mean of the half-bin argmax ``(id + 0.5)/(bins - 1) - 0.5`` and the
    soft-argmax (:func:`decode_soft`), in float32, shape ``(...)``."""
    _check_logits(logits, bins, range_)
    ids = logits.argmax(dim=-1)
    hard = (ids + 0.5) / (bins - 1) - _offset(range_)
    soft = decode_soft(logits, bins, range_)
    return (soft + hard) / 2
