"""The fusion flags of ``rigcap fuse``, ``rigcap live`` and ``rigcap demo``, and the one way they become options.

Each flag's default is ``None`` ("not given"), so a value in the capture config's
``[fusion]`` table is kept unless the flag overrides it, and the defaults stay in
:class:`triangulate.fusion_options.FusionOptions` alone.
"""

from __future__ import annotations

from rigcap.argtypes import non_negative_float, positive_float
from triangulate.fusion_options import SWITCHES, FusionOptions

def persons_count(text: str) -> int:
    """``--persons``: 'auto' -> 0 (everybody), else a positive whole number."""
    import argparse

    if str(text).strip().lower() == "auto":
        return 0
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive whole number, got {text!r}")
    return n


def robust_loss_name(text: str) -> str:
    """``--robust-loss``: one of the soft weights the triangulation knows."""
    import argparse

    from triangulate.robust import ROBUST_LOSSES

    if text not in ROBUST_LOSSES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(ROBUST_LOSSES)}, got {text!r}")
    return text


# flag -> (options field, argparse type, help)
_FLAGS = {
    "--tolerance-ms": ("tolerance_ms", positive_float, "capture times within this belong to one instant (default: half a frame)"),
    "--deadline-ms": ("deadline_ms", non_negative_float, "wait at most this for a straggler (default: one frame)"),
    "--alive-window-s": ("alive_window_s", positive_float,
                         f"stop waiting for a camera silent this long (default {FusionOptions.alive_window_s} s)"),
    "--max-clock-skew-s": ("max_clock_skew_s", positive_float,
                           "drop (and count as clock outliers) messages whose capture time, corrected by the host's "
                           f"clock offset, is further than this from their arrival (default {FusionOptions.max_clock_skew_s} s)"),
    "--prior-gate-m": ("prior_gate_m", non_negative_float,
                       "drop a two-view point this far from the joint's last position, plus what it may have moved "
                       f"since (default {FusionOptions.prior_gate_m} m)"),
    "--persons": ("persons", persons_count,
                  "people to fuse: 1 (default) the most confident per camera; N or 'auto' associates everybody "
                  "across cameras and tracks them with stable ids (kp3d points [persons, joints, 3] + person_ids)"),
    "--robust-loss": ("robust_loss", robust_loss_name,
                      "soft weight of every non-gross view by its reprojection error after outlier rejection: cauchy, "
                      f"huber or none (the hard choice only) (default {FusionOptions.robust_loss})"),
}


def add_fusion_arguments(parser, skip=()) -> None:
    """The fusion flags (``skip``: flags the command defines otherwise, e.g. the demo's ``--persons``)."""
    group = parser.add_argument_group("fusion (over the config's [fusion] table)")
    for flag, (dest, kind, text) in _FLAGS.items():
        if flag in skip:
            continue
        group.add_argument(flag, dest=dest, type=kind, default=None, metavar=flag.rsplit("-", 1)[-1].upper(), help=text)
    group.add_argument("--no-smoothing", dest="smoothing", action="store_false", default=None,
                       help="publish the raw triangulation (no One-Euro filter)")
    group.add_argument("--motion-sync", dest="motion_sync", action="store_true", default=None,
                       help="refine each camera's time offset from the motion (sync from motion over the last few "
                       "seconds, every few seconds, in the background); applied when confident, shown in the stats")
    group.add_argument("--fixed-threshold", dest="auto_threshold", action="store_false", default=None,
                       help="a fixed 15 px outlier threshold (default: 3 sigmas of the detector noise, at least 15 px, "
                       "from the recent instants)")


def fusion_options(args, config=None, fps: float | None = None) -> FusionOptions:
    """Options from the flags in ``args`` over ``config`` (a :class:`capture.config.CaptureConfig`) or the defaults."""
    given = {dest: getattr(args, dest) for dest, *_ in _FLAGS.values() if getattr(args, dest, None) is not None}
    for flag in SWITCHES:
        if getattr(args, flag, None) is not None:
            given[flag] = getattr(args, flag)
    if fps is not None:
        given["fps"] = fps
    return config.fusion_options(**given) if config is not None else FusionOptions(**given)


def add_angle_arguments(parser) -> None:
    group = parser.add_argument_group("live movement analysis")
    group.add_argument("--angles", action="store_true",
                       help="also publish the joint angles of every instant on the 'angles' topic (rigcap angles --list)")
    group.add_argument("--exercise", metavar="NAME|TOML",
                       help="with the angles, count this exercise's reps live (squat, lunge, arm_raise or a TOML)")


def instant_hooks(args) -> list:
    """The fusion node's per-instant hooks the flags ask for (the live angles publisher), checked here, up front."""
    if not (getattr(args, "angles", False) or getattr(args, "exercise", None)):
        return []
    from rigcap.analysis.exercises import load_exercise
    from rigcap.analysis.live import LiveAngles

    return [LiveAngles(load_exercise(args.exercise) if args.exercise else None)]
