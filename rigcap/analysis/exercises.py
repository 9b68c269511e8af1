"""Exercises: repetitions, range of motion and form rules, defined by a small TOML per exercise.

An exercise file (``configs/exercises/squat.toml``) names

* the **driving angle** (one angle of :mod:`rigcap.analysis.angles`, or several combined frame
  by frame: ``mean``, ``max``, ``min``, ``spread`` = max - min) and two thresholds with
  hysteresis: a rep starts when the driving angle passes ``enter`` and ends when it comes back
  past ``exit`` (``enter > exit``: the rep's peak is a maximum, e.g. knee flexion at a squat's
  bottom; ``enter < exit``: a minimum).  Noise that crosses one threshold only never counts;
  movements shorter than ``min_duration_s`` are dropped;
* ``[[require]]`` conditions at the peak that make a movement this exercise (a squat flexes
  both hips; a lunge splits them): a movement that fails one is not counted, and is reported
  as "not this exercise";
* ``[[rules]]`` of form, checked per rep: ``at = "peak"`` (the value at the peak frame, e.g.
  depth) or ``at = "rep"`` (the worst value over the whole rep, e.g. knee valgus), against
  ``min`` and/or ``max`` (degrees), optionally on absolute values (``abs = true``) and per angle
  (``each = true``: left and right checked, and reported, separately).  Over a rep, a limit
  counts as broken only when it stays broken for ``sustain_s`` (default 0.15 s): a single frame
  past it is a triangulation error far more often than a knee that caved in for 30 ms.  The
  value reported is the one kept over that time.

Everything is vectorised over frames; the only loop is over the reps found.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rigcap.analysis.angles import ANGLE_NAMES, JointAngles
from rigcap.errors import InputFileError, RigcapError, read_toml

EXERCISE_DIR = Path(__file__).resolve().parents[2] / "configs" / "exercises"
_COMBINE = ("mean", "max", "min", "spread")


@dataclass(frozen=True)
class Signal:
    """Angles combined frame by frame into one curve."""

    angles: tuple[str, ...]
    combine: str = "mean"
    absolute: bool = False

    def values(self, angles: JointAngles) -> np.ndarray:
        """(F, K) the angles themselves (absolute when asked)."""
        v = np.stack([angles[a] for a in self.angles], axis=-1)
        return np.abs(v) if self.absolute else v

    def combined(self, angles: JointAngles) -> np.ndarray:
        """(F,) the combination.  ``mean`` and ``spread`` are NaN where any angle is NaN (a mean
        of half the angles would jump when a joint drops out); ``max`` and ``min`` take the
        angles there are (the front knee hidden at a lunge's bottom: the back knee still
        bends), NaN only where all are missing."""
        v = self.values(angles)
        if self.combine == "mean":
            return v.mean(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames stay NaN
            if self.combine == "max":
                return np.nanmax(v, -1)
            if self.combine == "min":
                return np.nanmin(v, -1)
        return v.max(-1) - v.min(-1)

    @property
    def label(self) -> str:
        inner = ", ".join(self.angles)
        text = inner if len(self.angles) == 1 else f"{self.combine}({inner})"
        return f"|{text}|" if self.absolute else text


@dataclass(frozen=True)
class Rule:
    name: str
    text: str
    signal: Signal
    at: str  # "peak" | "rep"
    min: float | None
    max: float | None
    each: bool = False
    sustain_s: float = 0.15  # at = "rep": the limit must be broken this long (one bad frame is noise)

    def bound_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Exercise:
    name: str
    description: str
    peak_name: str  # what the driving angle's extreme is called: "bottom", "top"
    driving: Signal
    enter: float
    exit: float
    min_duration_s: float
    max_gap_s: float
    require: tuple[Rule, ...] = ()
    rules: tuple[Rule, ...] = ()
    path: str = ""


@dataclass
class RuleHit:
    rep: int  # 1-based
    rule: str
    text: str
    angle: str
    value: float
    frame: int
    bound: str


@dataclass
class Rep:
    index: int  # 1-based
    start: int  # frames: last frame at rest before the movement, the peak, first frame back at rest
    peak: int
    end: int
    peak_value: float  # the driving angle at the peak (a squat's depth, in knee flexion degrees)
    rom: float  # range of motion of the driving angle over the rep
    hits: list[RuleHit] = field(default_factory=list)


@dataclass
class ExerciseResult:
    exercise: Exercise
    driving: np.ndarray  # (F,) the driving angle, short gaps filled
    reps: list[Rep]
    not_this_exercise: list[tuple[int, str]]  # (peak frame, which requirement failed)
    in_progress: bool  # a movement had started but not come back when the recording ended
    fps: float | None

    @property
    def hits(self) -> list[RuleHit]:
        return [h for r in self.reps for h in r.hits]


# ------------------------------------------------------------------ loading
def _signal(path, where: str, table: dict, default_combine: str = "mean") -> Signal:
    angles = table.get("angles", table.get("angle"))
    if isinstance(angles, str):
        angles = [angles]
    if not isinstance(angles, list) or not angles or not all(isinstance(a, str) for a in angles):
        raise InputFileError(path, f"{where}: 'angles' must be an angle name or a list of them")
    unknown = [a for a in angles if a not in ANGLE_NAMES]
    if unknown:
        raise InputFileError(path, f"{where}: unknown angle(s) {', '.join(unknown)}; known: {', '.join(ANGLE_NAMES)}")
    combine = table.get("combine", default_combine)
    if combine not in _COMBINE:
        raise InputFileError(path, f"{where}: 'combine' must be one of {', '.join(_COMBINE)}, got {combine!r}")
    return Signal(tuple(angles), combine, bool(table.get("abs", False)))


def _number(path, where: str, table: dict, key: str, default=None, required: bool = False):
    if key not in table:
        if required:
            raise InputFileError(path, f"{where}: missing '{key}'")
        return default
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise InputFileError(path, f"{where}: '{key}' must be a number, got {v!r}")
    return float(v)


def _rules(path, data: dict, key: str, default_at: str) -> tuple[Rule, ...]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise InputFileError(path, f"'{key}' must be an array of tables ([[{key}]])")
    out = []
    for i, t in enumerate(items):
        where = f"[[{key}]] #{i + 1}"
        if not isinstance(t, dict):
            raise InputFileError(path, f"{where}: must be a table")
        name = str(t.get("name", f"{key} {i + 1}"))
        where = f"[[{key}]] {name!r}"
        at = t.get("at", default_at)
        if at not in ("peak", "rep"):
            raise InputFileError(path, f"{where}: 'at' must be 'peak' or 'rep', got {at!r}")
        lo, hi = _number(path, where, t, "min"), _number(path, where, t, "max")
        if lo is None and hi is None:
            raise InputFileError(path, f"{where}: give 'min' and/or 'max' (degrees)")
        sig = _signal(path, where, t)
        sustain = _number(path, where, t, "sustain_s", 0.15)
        if sustain < 0:
            raise InputFileError(path, f"{where}: 'sustain_s' must be >= 0, got {sustain}")
        out.append(Rule(name, str(t.get("text", "")), sig, at, lo, hi, bool(t.get("each", False)), sustain))
    return tuple(out)


def load_exercise(name_or_path: str | Path) -> Exercise:
    """An exercise by name (``configs/exercises/<name>.toml``) or from a TOML file."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = EXERCISE_DIR / f"{name_or_path}.toml"
        if not p.is_file():
            known = ", ".join(sorted(f.stem for f in EXERCISE_DIR.glob("*.toml"))) or "none"
            raise RigcapError(f"unknown exercise {str(name_or_path)!r}: no {p} (known: {known}; or give a TOML file)")
    data = read_toml(p, "exercise definition")
    driving = data.get("driving")
    if not isinstance(driving, dict):
        raise InputFileError(p, "missing the [driving] table (angles, enter, exit)")
    sig = _signal(p, "[driving]", driving)
    enter = _number(p, "[driving]", driving, "enter", required=True)
    exit_ = _number(p, "[driving]", driving, "exit", required=True)
    if enter == exit_:
        raise InputFileError(p, "[driving]: 'enter' and 'exit' must differ (the gap between them is the hysteresis)")
    return Exercise(
        name=str(data.get("name", p.stem)), description=str(data.get("description", "")),
        peak_name=str(data.get("peak", "peak")), driving=sig, enter=enter, exit=exit_,
        min_duration_s=_number(p, "[driving]", driving, "min_duration_s", 0.4),
        max_gap_s=_number(p, "[driving]", driving, "max_gap_s", 0.3),
        require=_rules(p, data, "require", "peak"), rules=_rules(p, data, "rules", "peak"), path=str(p))


def known_exercises() -> list[str]:
    return sorted(f.stem for f in EXERCISE_DIR.glob("*.toml"))


# ------------------------------------------------------------------ analysis
def fill_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation across interior NaN runs of at most ``max_gap`` frames."""
    v = np.asarray(values, float).copy()
    ok = np.isfinite(v)
    if ok.sum() < 2 or ok.all():
        return v
    idx = np.arange(v.size)
    filled = np.interp(idx, idx[ok], v[ok])
    prev_ok = np.maximum.accumulate(np.where(ok, idx, -1))
    next_ok = np.minimum.accumulate(np.where(ok, idx, v.size)[::-1])[::-1]
    short = (~ok) & (prev_ok >= 0) & (next_ok < v.size) & (next_ok - prev_ok - 1 <= max_gap)
    v[short] = filled[short]
    return v


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _sustained(curve: np.ndarray, frames: int, high: bool) -> np.ndarray:
    """The value a curve keeps for ``frames`` frames around each frame: the running minimum
    (``high``: how high it stays) or maximum; NaN frames never count as bad."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    if frames <= 1:
        return curve
    if high:
        return minimum_filter1d(np.where(np.isfinite(curve), curve, -np.inf), frames, mode="nearest")
    return maximum_filter1d(np.where(np.isfinite(curve), curve, np.inf), frames, mode="nearest")


def _check(rule: Rule, angles: JointAngles, rep: Rep, window: slice, rate: float) -> list[RuleHit]:
    """The rule's violations in one rep (one per angle with ``each``, else at most one)."""
    if rule.each:
        curves = [(a, Signal((a,), absolute=rule.signal.absolute).combined(angles)) for a in rule.signal.angles]
    else:
        curves = [(rule.signal.label, rule.signal.combined(angles))]
    sustain = max(1, int(round(rule.sustain_s * rate)))
    hits = []
    for label, curve in curves:
        for bound, high, bad in ((rule.min, False, np.less), (rule.max, True, np.greater)):
            if bound is None:
                continue
            if rule.at == "peak":
                frame, value = rep.peak, float(curve[rep.peak])
            else:
                kept = _sustained(curve, sustain, high)[window]
                if not np.isfinite(kept).any():
                    continue
                frame = window.start + int(np.argmax(kept) if high else np.argmin(kept))
                value = float(kept[frame - window.start])
            if np.isfinite(value) and bad(value, bound):
                hits.append(RuleHit(rep.index, rule.name, rule.text, label, value, frame, rule.bound_text()))
    return hits


def analyze_exercise(angles: JointAngles, exercise: Exercise, fps: float | None) -> ExerciseResult:
    """Reps, range of motion and rule hits of one person: ``angles.values`` (frames, A)."""
    if angles.values.ndim != 2:
        raise ValueError(f"analyze one person at a time: angles must be (frames, angles), got {angles.values.shape}")
    rate = fps or 30.0
    s = fill_gaps(exercise.driving.combined(angles), int(round(exercise.max_gap_s * rate)))
    sign = 1.0 if exercise.enter > exercise.exit else -1.0
    z, enter, exit_ = sign * s, sign * exercise.enter, sign * exercise.exit
    idx = np.arange(s.size)
    with np.errstate(invalid="ignore"):
        last_above = np.maximum.accumulate(np.where(z > enter, idx, -1)) if s.size else idx
        last_below = np.maximum.accumulate(np.where(z < exit_, idx, -1)) if s.size else idx
    moving = last_above > last_below  # entered and not yet back
    starts, ends = _runs(moving)
    reps: list[Rep] = []
    rejected: list[tuple[int, str]] = []
    in_progress = False
    for a, b in zip(starts, ends):
        if b >= s.size:  # still moving when the recording ends
            in_progress = True
            continue
        start = max(int(last_below[a - 1]) if a > 0 else 0, 0)
        end = int(b)  # the first frame back past `exit`
        if (end - start) / rate < exercise.min_duration_s:
            continue
        window = slice(start, end + 1)
        peak = start + int(np.nanargmax(z[window]))
        rep = Rep(len(reps) + 1, start, peak, end, float(s[peak]), float(np.nanmax(s[window]) - np.nanmin(s[window])))
        failed = [r for r in exercise.require if _check(r, angles, rep, window, rate)]
        if failed:
            rejected.append((peak, failed[0].text or failed[0].name))
            continue
        for rule in exercise.rules:
            rep.hits.extend(_check(rule, angles, rep, window, rate))
        reps.append(rep)
    return ExerciseResult(exercise, s, reps, rejected, in_progress, fps)


def result_summary(result: ExerciseResult) -> dict:
    """The result as plain data (what ``rigcap analyze --json`` writes)."""
    t = (lambda f: round(f / result.fps, 3)) if result.fps else (lambda f: None)
    return {
        "exercise": result.exercise.name,
        "driving_angle": result.exercise.driving.label,
        "reps": len(result.reps),
        "in_progress": result.in_progress,
        "not_this_exercise": len(result.not_this_exercise),
        "rep_list": [
            {"rep": r.index, "start_frame": r.start, "peak_frame": r.peak, "end_frame": r.end,
             "peak_time_s": t(r.peak), result.exercise.peak_name + "_deg": round(r.peak_value, 2),
             "rom_deg": round(r.rom, 2),
             "hits": [{"rule": h.rule, "angle": h.angle, "value_deg": round(h.value, 2), "frame": h.frame,
                       "limit": h.bound} for h in r.hits]}
            for r in result.reps],
    }
