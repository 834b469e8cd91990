"""The online tracker (``FARTracker``), its crops, box geometry and template schedules."""

from fartrack.tracker.build import build_tracker
from fartrack.tracker.tracker import FARTracker, TrackerParams, tracker_params_from

__all__ = ["FARTracker", "TrackerParams", "build_tracker", "tracker_params_from"]
