"""Every setting of live fusion, with its one set of defaults.

``rigcap fuse``, ``rigcap live`` and ``rigcap demo`` build a :class:`FusionOptions`
(from the capture config's ``[fusion]`` table and their command-line flags, see
:func:`rigcap.fusion_args.fusion_options`), and the fusion node, the fusion
engine and the instant grouper read it: no default is written twice, so the three
commands cannot drift apart (they did: ``alive_window`` was 0.5 s in one, 1 s in
another, 1e9 ns in a third).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rigcap.errors import InputFileError
from triangulate.robust import ROBUST_LOSSES


@dataclass(frozen=True)
class FusionOptions:
    """Live fusion settings; units in the names.

    ``fps``: the cameras' frame rate, which sets the defaults below it.
    ``tolerance_ms``: capture times within this belong to one instant (None:
    half a frame, so two frames of one camera never share an instant).
    ``deadline_ms``: the longest an instant waits for a straggler after its
    first message arrived (None: one frame).  ``alive_window_s``: a camera that
    sent nothing for this long is no longer waited for.  ``max_clock_skew_s``:
    a message whose capture time (corrected by its host's clock offset) is
    further than this from its arrival is a clock outlier, dropped and counted
    (None: capture times on an unrelated clock).  ``max_clock_jump_ms``: a
    message whose capture-minus-arrival lead differs from its camera's recent
    median by more than this is a clock jump: dropped, counted, the camera
    reported quarantined (None: off; also off without ``max_clock_skew_s``).  ``smoothing``: One-Euro filter
    on the published points.  ``prior_gate_m``: a point resting on two views
    farther than this (plus what the joint may have moved since) from the
    joint's last accepted position is dropped (None: no gate).
    ``batch_limit``: most messages taken off one subscriber per loop turn.
    ``persons``: 1 fuses one person (the most confident detection per camera,
    as always); 0 ("auto") or N associates everybody across cameras and tracks
    them with stable ids (:mod:`triangulate.association`,
    :mod:`triangulate.tracking`), publishing at most N (0: all) confirmed people.
    ``robust_loss``: after the live outlier rejection, every view that is not a
    gross outlier is fitted again with this soft weight on its reprojection
    error (``cauchy``, ``huber``; ``none``: keep the hard choice), as the
    offline engine does (:func:`triangulate.robust.soft_refit`).
    ``motion_sync``: refine each camera's time offset from the motion in the background
    (:mod:`triangulate.live_sync`), applied when confident, reported in the stats.
    ``auto_threshold``: the outlier threshold from the detector's noise, as offline
    (3 sigmas, at least 15 px), estimated from the residuals of the recent instants
    (:class:`triangulate.fusion.LiveTriangulator`); off: a fixed 15 px.  A coarse detector
    needs it (MediaPipe on the real Pose2Sim demo, ~10 px noise).
    """

    fps: float = 30.0
    tolerance_ms: float | None = None
    deadline_ms: float | None = None
    alive_window_s: float = 1.0
    max_clock_skew_s: float | None = 2.0
    max_clock_jump_ms: float | None = 100.0
    smoothing: bool = True
    prior_gate_m: float | None = 0.15
    batch_limit: int = 256
    persons: int = 1
    robust_loss: str = "cauchy"
    motion_sync: bool = False
    auto_threshold: bool = True

    def __post_init__(self) -> None:
        if self.robust_loss not in ROBUST_LOSSES:
            raise ValueError(f"fusion option robust_loss must be one of {', '.join(ROBUST_LOSSES)}, "
                             f"got {self.robust_loss!r}")
        for name in ("fps", "alive_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"fusion option {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("tolerance_ms", "deadline_ms", "max_clock_skew_s", "max_clock_jump_ms", "prior_gate_m"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"fusion option {name} must be >= 0, got {value!r}")
        if not isinstance(self.persons, int) or isinstance(self.persons, bool) or self.persons < 0:
            raise ValueError(f"fusion option persons must be 0 (auto) or a positive whole number, got {self.persons!r}")
        if self.batch_limit < 1:
            raise ValueError(f"fusion option batch_limit must be >= 1, got {self.batch_limit!r}")

    @property
    def period_ns(self) -> int:
        return int(1e9 / self.fps)

    @property
    def tolerance_ns(self) -> int:
        return self.period_ns // 2 if self.tolerance_ms is None else int(self.tolerance_ms * 1e6)

    @property
    def deadline_ns(self) -> int:
        return self.period_ns if self.deadline_ms is None else int(self.deadline_ms * 1e6)

    @property
    def alive_window_ns(self) -> int:
        return int(self.alive_window_s * 1e9)

    @property
    def max_clock_skew_ns(self) -> int | None:
        return None if self.max_clock_skew_s is None else int(self.max_clock_skew_s * 1e9)

    @property
    def max_clock_jump_ns(self) -> int | None:
        if self.max_clock_jump_ms is None or self.max_clock_skew_s is None:
            return None
        return int(self.max_clock_jump_ms * 1e6)

    @classmethod
    def from_table(cls, table: dict, source, **given) -> "FusionOptions":
        """Options from a config's ``[fusion]`` table (``source`` names the file in errors) and ``given`` values."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InputFileError(source, f"[fusion] has unknown key(s) {unknown}; known: {sorted(known)}")
        values = {}
        for key, value in table.items():
            flag = key in SWITCHES
            if key == "robust_loss":
                if not isinstance(value, str):
                    raise InputFileError(source, f"[fusion] robust_loss must be a string, got {value!r}")
            elif isinstance(value, bool) != flag or not isinstance(value, (int, float, bool)):
                kind = "true or false" if flag else "a number"
                raise InputFileError(source, f"[fusion] {key} must be {kind}, got {value!r}")
            values[key] = value
        try:
            return cls(**{**values, **given})
        except ValueError as exc:
            raise InputFileError(source, f"[fusion] {exc}") from None


# The on/off options (true/false in a config's [fusion], store_true/false flags on the command line).
SWITCHES = tuple(f.name for f in fields(FusionOptions) if f.type in ("bool", bool))
