"""Template slot schedules: reference parity, warm-ups, generalisation to 1..9 slots, freeing bound."""

from __future__ import annotations

import json

import pytest

from fartrack.tracker.schedule import STRATEGIES, WARMUPS, TemplateSchedule, middle_slots

HORIZON = 4000  # brute-force look-ahead for the freeing bound
CHECKED_N = 2000


def reference_exponential(n):
    """MODEL.md §8.4, 5 slots, IEEE double, truncated by int."""
    return [0] + [int((n - 1) * (1 - 0.7**k)) for k in (1, 2, 3)] + [n - 1]


def reference_equal_interval(n):
    """The reference's "linear" schedule (seq tracker), 5 slots."""
    step = (n - 1) / 4
    return [int(i * step) for i in range(4)] + [n - 1]


def reference_logarithmic(n):
    return [int((n - 1) * (i / 4) ** 0.5) for i in range(4)] + [n - 1]


# ----------------------------------------------------------------------------------------- reference parity
def test_fixture_template_slots_all_runs(official_dir):
    with open(official_dir / "tracker_expected.json") as handle:
        runs = json.load(handle)["runs"]
    assert set(runs) == {"sparse_d15", "sparse_d10", "sparse_d6", "stage1_d15"}
    for name, run in runs.items():
        schedule = TemplateSchedule(5, "exponential", "mode1")
        assert len(run["template_slots"]) == 39
        for frame in range(1, 40):  # frame f's forward sees T_0 .. T_{f-1}: n = f
            assert schedule.slots(frame) == run["template_slots"][frame - 1], f"{name} frame {frame}"


def test_network_io_slots(official_dir):
    import torch

    io = torch.load(official_dir / "network_io.pt", weights_only=True)
    schedule = TemplateSchedule()
    assert schedule.slots(io["frame_index"]) == io["template_slot_ids"].tolist() == [0, 3, 5, 7, 11]


MODEL_MD_TABLE = {  # row f = slots used by the forward of frame f + 1, i.e. n = f + 1
    1: [0, 0, 0, 0, 1],
    2: [0, 0, 0, 1, 2],
    3: [0, 0, 1, 2, 3],
    4: [0, 1, 2, 2, 4],
    5: [0, 1, 2, 3, 5],
    6: [0, 1, 3, 3, 6],
    7: [0, 2, 3, 4, 7],
    8: [0, 2, 4, 5, 8],
    10: [0, 3, 5, 6, 10],
    14: [0, 4, 7, 9, 14],
}


@pytest.mark.parametrize("f, expected", sorted(MODEL_MD_TABLE.items()))
def test_model_md_table(f, expected):
    assert TemplateSchedule(5, "exponential", "mode1").slots(f + 1) == expected


def test_exponential_coefficients_in_double():
    assert [1 - 0.7**k for k in (1, 2, 3)] == [0.30000000000000004, 0.51, 0.657]


@pytest.mark.parametrize(
    "strategy, reference",
    [("exponential", reference_exponential), ("equal_interval", reference_equal_interval),
     ("logarithmic", reference_logarithmic)],
)
def test_five_slot_strategies_equal_reference_formulas(strategy, reference):
    schedule = TemplateSchedule(5, strategy, "mode1")
    for n in range(5, 20001):
        assert schedule.slots(n) == reference(n), n


def test_equal_interval_examples():
    schedule = TemplateSchedule(5, "equal_interval")
    assert schedule.slots(5) == [0, 1, 2, 3, 4]
    assert schedule.slots(9) == [0, 2, 4, 6, 8]


def test_linear_is_a_sliding_window():
    schedule = TemplateSchedule(5, "linear")
    assert schedule.slots(5) == [0, 1, 2, 3, 4]
    assert schedule.slots(10) == [0, 6, 7, 8, 9]
    assert TemplateSchedule(3, "linear").slots(100) == [0, 98, 99]


# ------------------------------------------------------------------------------------------------ warm-ups
def test_mode1_warmup():
    schedule = TemplateSchedule(5, "exponential", "mode1")
    assert [schedule.slots(n) for n in (1, 2, 3, 4)] == [
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 2], [0, 0, 1, 2, 3]
    ]


def test_distill_warmup_sequence():
    schedule = TemplateSchedule(5, "exponential", "distill")
    assert schedule.slots(1) == [0, 0, 0, 0, 0]
    assert schedule.slots(2) == [0, 0, 1, 0, 0]
    assert schedule.slots(3) == [0, 0, 1, 2, 0]
    assert schedule.slots(4) == [0, 0, 1, 2, 3]
    assert schedule.slots(5) == [0, 1, 2, 2, 4]  # then the exponential schedule
    assert schedule.slots(15) == [0, 4, 7, 9, 14]


def test_distill_warmup_is_stateful_and_resets():
    schedule = TemplateSchedule(5, "exponential", "distill")
    schedule.slots(1)
    schedule.slots(2)
    schedule.slots(3)
    schedule.slots(20)  # slots now hold 0, 5, 9, 12, 19
    assert schedule.slots(2) == [0, 0, 1, 12, 19]  # unwritten slots keep their previous content
    schedule.reset()
    assert schedule.slots(2) == [0, 0, 1, 0, 0]
    assert TemplateSchedule(5, "exponential", "distill").slots(3) == [0, 0, 1, 2, 0]


# ------------------------------------------------------------------------------------ other slot counts
@pytest.mark.parametrize("num_slots", range(1, 10))
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("warmup", WARMUPS)
def test_every_slot_count_gives_valid_slots(num_slots, strategy, warmup):
    schedule = TemplateSchedule(num_slots, strategy, warmup)
    previous = None
    for n in range(1, 300):
        slots = schedule.slots(n)
        assert len(slots) == num_slots
        assert slots[0] == 0
        assert all(0 <= s <= n - 1 for s in slots)
        if num_slots > 1:
            assert slots[-1] == n - 1 or (n < num_slots and warmup == "distill")
        if n >= num_slots:
            assert slots == sorted(slots)
            if previous is not None and n > num_slots:
                assert all(a <= b for a, b in zip(previous, slots))  # every slot non-decreasing in n
            previous = slots


def test_one_slot_is_always_the_initial_template():
    schedule = TemplateSchedule(1)
    assert [schedule.slots(n) for n in (1, 2, 50)] == [[0], [0], [0]]


def test_nine_slots():
    assert TemplateSchedule(9, "exponential").slots(101) == [0] + [int(100 * (1 - 0.7**k)) for k in range(1, 8)] + [100]
    assert TemplateSchedule(9, "equal_interval").slots(17) == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert TemplateSchedule(9, "linear").slots(20) == [0] + list(range(12, 20))
    assert TemplateSchedule(9, "exponential", "mode1").slots(3) == [0] * 7 + [1, 2]
    assert TemplateSchedule(9, "exponential", "distill").slots(3) == [0, 0, 1, 2, 0, 0, 0, 0, 0]


def test_two_slots():
    for strategy in STRATEGIES:
        assert TemplateSchedule(2, strategy).slots(7) == [0, 6]
        assert middle_slots(strategy, 7, 2) == []


# ------------------------------------------------------------------------------------------ freeing bound
@pytest.mark.parametrize("num_slots", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("warmup", WARMUPS)
def test_min_selectable_index_brute_force(num_slots, strategy, warmup):
    """Every index selected at any n' >= n is 0 or >= the bound; the bound is tight and monotone."""
    schedule = TemplateSchedule(num_slots, strategy, warmup)
    selected = [None] + [schedule.slots(n) for n in range(1, HORIZON + 1)]
    # smallest positive index selected at some n' in [n, HORIZON]
    future_min = [None] * (HORIZON + 2)
    running = None
    for n in range(HORIZON, 0, -1):
        positive = [s for s in selected[n] if s > 0]
        if positive:
            running = min(positive) if running is None else min(running, min(positive))
        future_min[n] = running
    bound_schedule = TemplateSchedule(num_slots, strategy, warmup)
    previous = 0
    for n in range(1, CHECKED_N + 1):
        bound = bound_schedule.min_selectable_index(n)
        assert bound >= max(previous, 1), f"bound not monotone at n={n}"
        previous = bound
        if future_min[n] is None:  # nothing but T_0 is ever selected
            assert num_slots == 1 and bound == n
        else:
            assert bound <= future_min[n], f"n={n}: index {future_min[n]} selected later but bound is {bound}"
            assert bound == future_min[n], f"n={n}: bound {bound} is not tight ({future_min[n]})"


def test_min_selectable_index_examples():
    schedule = TemplateSchedule(5, "exponential")
    assert [schedule.min_selectable_index(n) for n in (1, 4, 5, 8, 11, 39, 1001)] == [1, 1, 1, 2, 3, 11, 300]
    linear = TemplateSchedule(5, "equal_interval")
    assert linear.min_selectable_index(101) == 25
    assert TemplateSchedule(5, "linear").min_selectable_index(100) == 96


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_slots": 0},
        {"num_slots": 10},
        {"num_slots": 2.0},
        {"strategy": "random"},
        {"strategy": "Exponential"},
        {"warmup": "mode2"},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        TemplateSchedule(**kwargs)


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_bad_n(n):
    schedule = TemplateSchedule()
    with pytest.raises(ValueError):
        schedule.slots(n)
    with pytest.raises(ValueError):
        schedule.min_selectable_index(n)


def test_middle_slots_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="random"):
        middle_slots("random", 10, 5)
