"""The bounded template store: exact under the cap, thinned evenly beyond it, flat tracker memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.build import init_weights
from fartrack.models.encoder import FARTrackNet, NetConfig
from fartrack.tracker import FARTracker, TrackerParams
from fartrack.tracker.schedule import DEFAULT_TEMPLATE_CAP, TemplateSchedule, TemplateStore


def _fill(cap, frames, strategy="exponential"):
    schedule = TemplateSchedule(5, strategy)
    store = TemplateStore(schedule, cap)
    store.reset("T0")
    used = []
    for n in range(1, frames + 1):
        slots = schedule.slots(store.count)
        used.append([store.resolve(k) for k in slots])
        store.add(f"T{n}")
    return store, used


@pytest.mark.parametrize("strategy", ["exponential", "equal_interval", "linear"])
def test_store_is_exact_while_the_selectable_templates_fit(strategy):
    unbounded, exact = _fill(None, 300, strategy)
    capped, used = _fill(DEFAULT_TEMPLATE_CAP, 300, strategy)  # <= ~211 selectable at n = 301
    assert used == exact
    assert capped.thinned == 0 and capped.keys() == unbounded.keys()
    schedule = TemplateSchedule(5, strategy)
    for frame, slots in enumerate(exact, start=1):  # the store serves exactly what the schedule asks for
        assert slots == schedule.slots(frame)


def test_unbounded_store_keeps_every_selectable_template_only():
    store, _ = _fill(None, 1000)
    bound = store.schedule.min_selectable_index(store.count)
    assert store.keys() == [0, *range(bound, store.count)]
    assert len(store) > 600  # ~0.7 n: the reference's memory grows linearly


@pytest.mark.parametrize("cap", [8, 64])
def test_capped_store_thins_evenly_and_serves_the_nearest(cap):
    store, used = _fill(cap, 2000)
    keys = store.keys()
    assert len(keys) == cap and store.thinned > 0
    n = store.count
    bound = store.schedule.min_selectable_index(n)
    assert keys[0] == 0 and keys[-1] == n - 1  # T0 and the newest are exact
    even = (n - 1 - bound) / (cap - 2)
    gaps = np.diff([bound] + keys[1:])
    assert gaps.max() <= 2.5 * even  # close to evenly spaced over the selectable range
    for k in range(bound, n):  # nearest stored index (ties: the older one)
        served = store.resolve(k)
        distance = min(abs(k - key) for key in keys)
        assert abs(served - k) == distance and served in store
        if k - distance in keys:
            assert served == k - distance
    for slots in used:  # slot 0 and the newest slot are never approximated
        assert slots[0] == 0
    final_slots = store.schedule.slots(n)
    assert store.resolve(final_slots[-1]) == n - 1


def test_store_rejects_bad_caps():
    for cap in (0, 2, 2.5, True):
        with pytest.raises(ValueError, match="cap"):
            TemplateStore(TemplateSchedule(5), cap)


def _net():
    torch.manual_seed(0)
    net = FARTrackNet(NetConfig(sparse=True))
    init_weights(net)
    return net.eval()


def test_tracker_memory_stays_under_the_cap_and_matches_unbounded_until_thinning():
    net = _net()
    frames, boxes = moving_box_sequence(num_frames=28, height=96, width=128, seed=3)
    runs = {}
    for cap in (None, 12):
        tracker = FARTracker(net, TrackerParams(depth=1, template_cap=cap))
        tracker.initialize(frames[0], boxes[0])
        out, sizes, thinned_at = [], [], None
        for frame in frames[1:]:
            out.append(tracker.track(frame))
            sizes.append(len(tracker.memory))
            if thinned_at is None and tracker.memory.thinned:
                thinned_at = len(out)
        runs[cap] = (np.array(out), sizes, thinned_at)
    capped, sizes, thinned_at = runs[12]
    assert max(sizes) <= 12 and thinned_at is not None
    assert max(runs[None][1]) > 12
    # identical until the first thinning takes effect (the frame after it)
    np.testing.assert_array_equal(capped[:thinned_at], runs[None][0][:thinned_at])
