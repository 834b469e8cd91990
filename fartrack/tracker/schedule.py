"""Template slot schedules: which stored templates fill the network's template slots (MODEL.md §8.4).

The store holds ``T_0`` (the initial template) and one template per tracked frame, so before the forward of
frame ``f`` it holds ``n = f`` templates ``T_0 .. T_{n-1}``. With ``N`` slots, slot 0 always holds ``T_0``
and the last slot the newest template ``T_{n-1}``; the strategy picks the ``N - 2`` middle slots. With one
slot, that slot always holds ``T_0`` (the network then sees no online template).

Strategies for ``n >= N`` (indices truncated towards zero, duplicates allowed; ``k = 1 .. N-2``):

- ``exponential`` (reference default): ``int((n-1) * (1 - 0.7**k))`` in IEEE double, the coefficient
  computed first. For 5 slots this is exactly the reference (coefficients 0.30000000000000004, 0.51,
  0.657); other slot counts continue the same geometric sequence (our generalisation).
- ``equal_interval`` (the reference's "linear", used by its seq tracker): ``floor(k * (n-1) / (N-1))``,
  computed exactly in integers. For 5 slots this equals the reference's ``int(k * ((n-1)/4))`` (the
  division by 4 and the product are exact in double).
- ``logarithmic`` (implemented but unused in the reference): ``int((n-1) * (k/(N-1))**0.5)``.
- ``linear`` (our definition, not the reference's "linear"): a sliding window, the ``N - 1`` most recent
  templates plus ``T_0``, i.e. middle slot ``k`` holds ``n - N + k``.

Warm-up for ``n < N``:

- ``mode1`` (reference stage-1, seq and sparse trackers): slot ``p`` holds ``max(0, p - (N - n))``.
- ``distill`` (reference distill tracker): stateful. The slots start as all ``T_0``; a call with ``n``
  sets slot ``i + 1`` to ``T_i`` for ``i < n`` and leaves the other slots as they were. Called with
  ``n = 1, 2, 3, 4`` in turn (5 slots) this gives (0,0,0,0,0), (0,0,1,0,0), (0,0,1,2,0), (0,0,1,2,3).
  The state is per tracked sequence: call :meth:`TemplateSchedule.reset` (or make a new schedule) when a
  new sequence starts.

A template that the schedule can never select again can be freed: see
:meth:`TemplateSchedule.min_selectable_index` (the reference keeps all of them; MODEL.md §12 #5).
:class:`TemplateStore` holds the templates the schedule can still select, optionally thinned to a cap.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["STRATEGIES", "WARMUPS", "DEFAULT_TEMPLATE_CAP", "middle_slots", "TemplateSchedule", "TemplateStore"]

STRATEGIES: Tuple[str, ...] = ("exponential", "equal_interval", "logarithmic", "linear")
WARMUPS: Tuple[str, ...] = ("mode1", "distill")
EXPONENTIAL_BASE = 0.7
MAX_SLOTS = 9
DEFAULT_TEMPLATE_CAP = 256


def middle_slots(strategy: str, n: int, num_slots: int) -> List[int]:
    """Stored indices of slots ``1 .. num_slots-2`` for ``n >= num_slots`` stored templates.

    Every returned index is non-decreasing in ``n`` and lies in ``[0, n-1]``.
    """
    last = n - 1
    count = num_slots - 2
    if strategy == "exponential":
        return [int(last * (1 - EXPONENTIAL_BASE**k)) for k in range(1, count + 1)]
    if strategy == "equal_interval":
        return [(k * last) // (num_slots - 1) for k in range(1, count + 1)]
    if strategy == "logarithmic":
        return [int(last * (k / (num_slots - 1)) ** 0.5) for k in range(1, count + 1)]
    if strategy == "linear":
        return [n - num_slots + k for k in range(1, count + 1)]
    raise ValueError(f"unknown template schedule strategy {strategy!r}; expected one of {STRATEGIES}")


class TemplateSchedule:
    """Slot schedule for ``num_slots`` template slots (1 .. 9), a strategy and a warm-up mode.

    Args:
        num_slots: number of template slots ``N`` of the network (reference: 5).
        strategy: one of :data:`STRATEGIES` (reference: ``"exponential"``).
        warmup: ``"mode1"`` or ``"distill"`` (reference: ``"mode1"``; ``"distill"`` for the distill tracker).
    """

    def __init__(self, num_slots: int = 5, strategy: str = "exponential", warmup: str = "mode1") -> None:
        if isinstance(num_slots, bool) or not isinstance(num_slots, int) or not 1 <= num_slots <= MAX_SLOTS:
            raise ValueError(f"num_slots must be an integer in 1..{MAX_SLOTS}, got {num_slots!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown template schedule strategy {strategy!r}; expected one of {STRATEGIES}")
        if warmup not in WARMUPS:
            raise ValueError(f"unknown template warm-up mode {warmup!r}; expected one of {WARMUPS}")
        self.num_slots = num_slots
        self.strategy = strategy
        self.warmup = warmup
        self._current: List[int] = [0] * num_slots

    def __repr__(self) -> str:
        return f"TemplateSchedule(num_slots={self.num_slots}, strategy={self.strategy!r}, warmup={self.warmup!r})"

    def reset(self) -> None:
        """Forget the slot contents (all ``T_0``); needed between sequences for the ``distill`` warm-up."""
        self._current = [0] * self.num_slots

    def slots(self, n: int) -> List[int]:
        """Stored-template index held by each slot when ``n`` templates ``T_0 .. T_{n-1}`` are stored.

        Stateless except for the ``distill`` warm-up (see the module docstring).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of stored templates must be an integer >= 1, got {n!r}")
        size = self.num_slots
        if size == 1:
            result = [0]
        elif n >= size:
            result = [0] + middle_slots(self.strategy, n, size) + [n - 1]
        elif self.warmup == "mode1":
            result = [max(0, p - (size - n)) for p in range(size)]
        else:  # distill
            result = list(self._current)
            for i in range(n):
                result[i + 1] = i
        self._current = result
        return list(result)

    def min_selectable_index(self, n: int) -> int:
        """Smallest stored index ``> 0`` that :meth:`slots` can select at any ``n' >= n``.

        Stored templates ``1 .. bound-1`` will never be used again and can be freed (``T_0`` is always
        kept). The bound is tight and non-decreasing in ``n``: every middle index (and the newest, ``n-1``)
        is non-decreasing in ``n`` and grows by less than 1 per step until it first becomes positive, so
        the smallest positive index selectable from ``n`` on is ``max(1, min over slots at n)``. During the
        warm-up (``n < N``) index 1 is still to come (or in use), so the bound is 1. With one slot nothing
        but ``T_0`` is ever used and the bound is ``n``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of stored templates must be an integer >= 1, got {n!r}")
        size = self.num_slots
        if size == 1:
            return n
        if n < size:
            return 1
        candidates = middle_slots(self.strategy, n, size) + [n - 1]
        return max(1, min(candidates))


class TemplateStore:
    """The stored templates ``T_0 .. T_{n-1}`` that a :class:`TemplateSchedule` can still select.

    ``add`` appends the next template and frees every template the schedule can never select again
    (exact: identical results to keeping all of them, as the reference does). With ``cap`` set, at most
    ``cap`` templates are held (``T_0`` included). While the selectable templates fit under the cap
    nothing else changes, so the tracker stays identical to the reference. Beyond it, a thinning rule
    drops one template per added one: among the stored templates strictly between the oldest stored one
    (after ``T_0``) and the newest, the one whose neighbours are closest together (ties: the oldest) is
    dropped, which keeps the stored indices close to evenly spaced over the selectable range. A scheduled
    index that was thinned out is served by the nearest stored template (ties: the older one), with the
    keep-mask that template got when it was the newest; ``T_0`` and the newest template are always exact.

    With the reference exponential schedule about ``0.7 n`` templates stay selectable after ``n`` frames,
    so the default cap of 256 (about 9.6 MB of cached ViT-Tiny template tokens) is exact up to about frame
    365 and keeps memory flat after that; ``cap=None`` keeps every selectable template (memory grows
    linearly, about 26 kB per frame).
    """

    def __init__(self, schedule: TemplateSchedule, cap: Optional[int] = DEFAULT_TEMPLATE_CAP) -> None:
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 3):
            raise ValueError(f"template cap must be an integer >= 3 or None (unbounded), got {cap!r}")
        self.schedule = schedule
        self.cap = cap
        self._items: Dict[int, Any] = {}
        self._keys: List[int] = []
        self._freed_below = 1
        self.count = 0
        self.thinned = 0

    def reset(self, first: Any) -> None:
        """Start a new sequence whose first template is ``first`` (stored index 0)."""
        self._items = {0: first}
        self._keys = [0]
        self._freed_below = 1
        self.count = 1
        self.thinned = 0

    def add(self, item: Any) -> int:
        """Store the next template; returns its index (the number of templates stored before it)."""
        index = self.count
        self._items[index] = item
        self._keys.append(index)
        self.count += 1
        self._free_unreachable()
        if self.cap is not None and len(self._keys) > self.cap:
            self._thin()
        return index

    def resolve(self, index: int) -> int:
        """The stored index that serves scheduled index ``index`` (itself unless it was thinned out)."""
        if index in self._items:
            return index
        if not 0 <= index < self.count:
            raise KeyError(f"template {index} was never stored (stored: 0..{self.count - 1})")
        keys = self._keys
        pos = bisect_left(keys, index)
        if pos >= len(keys):
            return keys[-1]
        before, after = keys[pos - 1], keys[pos]
        return before if index - before <= after - index else after

    def __getitem__(self, index: int) -> Any:
        return self._items[self.resolve(index)]

    def __contains__(self, index: object) -> bool:
        return index in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def keys(self) -> List[int]:
        """Stored indices in ascending order."""
        return list(self._keys)

    def values(self) -> List[Any]:
        """Stored templates in ascending index order."""
        return [self._items[k] for k in self._keys]

    def _free_unreachable(self) -> None:
        bound = self.schedule.min_selectable_index(self.count)
        if bound <= self._freed_below:
            return
        keys = self._keys
        pos = bisect_left(keys, bound, lo=1)
        for key in keys[1:pos]:
            del self._items[key]
        del keys[1:pos]
        self._freed_below = bound

    def _thin(self) -> None:
        keys = self._keys
        # candidates keys[2 .. len-2]: not T_0, not the oldest selectable one, not the newest
        best, best_gap = None, None
        for pos in range(2, len(keys) - 1):
            gap = keys[pos + 1] - keys[pos - 1]
            if best_gap is None or gap < best_gap:
                best, best_gap = pos, gap
        if best is None:
            return
        del self._items[keys[best]]
        del keys[best]
        self.thinned += 1
