"""A procedural person with exact 3D ground truth: Halpe-26 joints, metres, z up.

The body is a kinematic chain of rigid segments, so every bone keeps its
length to numerical precision in every frame:

* pelvis (Halpe ``hip``) -> hip joints (rigid with the pelvis);
* pelvis -> spine rotation -> ``neck`` -> shoulders, and the head (nose, eyes,
  ears, top of the head) rotating about the neck;
* shoulder -> elbow -> wrist from shoulder flexion/abduction and elbow angles;
* legs by analytic two-bone inverse kinematics from the hip joint to an ankle
  target (knee bending forward along the foot), the foot (heel, toes) rigid on
  the ankle.  Feet are *placed*: while walking, the stance foot stays on its
  footprint on the floor, the swing foot arcs to the next one.

Adult proportions for a 1.75 m person (Winter's anthropometric table):
thigh 0.43 m, shank 0.43 m, ankle height 0.068 m, hip-to-neck 0.50 m,
upper arm 0.30 m, forearm 0.25 m, shoulder width 0.36 m, hip width 0.19 m,
top of head ~1.74 m when standing.

The motion is a seeded program of segments -- standing, turning on the spot
(stepping), walking along a curved path on the floor (within about
+-1.65 m of the centre), a squat, arm raises -- joined by short transitions in
which the feet step to their new places.  The ``workout`` program replaces the single
squat and arm raises with sets: squats of varied depth, alternating forward lunges and
lateral arm raises, with known repetitions (:meth:`PersonMotion.exercise_reps`), so rep
counting is measurable.  :class:`PersonMotion` evaluates it at
any time (seconds, vectorised), which is what lets cameras with time offsets
sample the person at their own capture instants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triangulate.skeletons import HALPE26

# ------------------------------------------------------------------ body dimensions (metres)
THIGH = 0.43
SHANK = 0.43
ANKLE_HEIGHT = 0.068
TORSO = 0.50
UPPER_ARM = 0.30
FOREARM = 0.25
HIP_HALF_WIDTH = 0.095
SHOULDER = np.array([-0.01, 0.18, -0.03])  # from the neck, left side (torso frame)
FOOT_HALF_GAP = 0.10  # lateral ankle offset from the body line when standing/walking
TOE_OUT = 0.10  # rad
STAND_PELVIS = 0.91
WALK_PELVIS = 0.86

HEAD_OFFSETS = {  # from the neck, head frame (x forward, y left, z up)
    "nose": (0.10, 0.0, 0.17),
    "left_eye": (0.075, 0.033, 0.205),
    "right_eye": (0.075, -0.033, 0.205),
    "left_ear": (-0.01, 0.075, 0.185),
    "right_ear": (-0.01, -0.075, 0.185),
    "head": (-0.01, 0.0, 0.31),
}
FOOT_OFFSETS = {  # from the ankle, foot frame, left foot (y mirrored for the right)
    "heel": (-0.055, 0.0, -0.058),
    "big_toe": (0.165, -0.025, -0.060),
    "small_toe": (0.13, 0.045, -0.060),
}

_KEYS_SCALAR = ("yaw", "pelvis_pitch", "pelvis_roll", "spine_pitch", "spine_roll", "spine_yaw",
                "head_yaw", "head_pitch", "l_flex", "l_abd", "l_elbow", "r_flex", "r_abd", "r_elbow",
                "l_foot_yaw", "r_foot_yaw", "l_foot_pitch", "r_foot_pitch")
_KEYS_VEC = ("pelvis", "l_ankle", "r_ankle")
_ANGLE_KEYS = ("yaw", "l_foot_yaw", "r_foot_yaw", "spine_yaw", "head_yaw")


def _smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def _apply(rot, vec):
    return np.einsum("...ij,...j->...i", rot, np.broadcast_to(vec, rot.shape[:-1]))


def _rest(n: int) -> dict:
    """Neutral controls (arms relaxed at the sides) for n instants; positions zero."""
    c = {k: np.zeros(n) for k in _KEYS_SCALAR}
    c.update({k: np.zeros((n, 3)) for k in _KEYS_VEC})
    c["l_abd"][:] = c["r_abd"][:] = 0.12
    c["l_flex"][:] = c["r_flex"][:] = 0.05
    c["l_elbow"][:] = c["r_elbow"][:] = 0.2
    return c


def _stance_feet(c: dict, center_xy, yaw) -> None:
    """Both feet planted beside the body line at ``center_xy`` facing ``yaw`` (arrays (n,) ok)."""
    yaw = np.broadcast_to(yaw, c["yaw"].shape)
    cx, cy = np.broadcast_to(center_xy[..., 0], yaw.shape), np.broadcast_to(center_xy[..., 1], yaw.shape)
    for side, sign in (("l", 1.0), ("r", -1.0)):
        nx, ny = -np.sin(yaw) * sign * FOOT_HALF_GAP, np.cos(yaw) * sign * FOOT_HALF_GAP
        c[f"{side}_ankle"] = np.stack([cx + nx, cy + ny, np.full_like(cx, ANKLE_HEIGHT)], -1)
        c[f"{side}_foot_yaw"] = yaw + sign * TOE_OUT


# ------------------------------------------------------------------ segments
class _Segment:
    duration: float

    def controls(self, tl: np.ndarray) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def at(self, tl: float) -> dict:
        return {k: v[0] for k, v in self.controls(np.array([float(tl)])).items()}


@dataclass
class _Stand(_Segment):
    center: np.ndarray
    yaw: float
    duration: float
    phase: float = 0.0

    def controls(self, tl):
        c = _rest(tl.size)
        sway = 0.008 * np.sin(2 * np.pi * 0.35 * tl + self.phase)
        c["yaw"][:] = self.yaw
        fwd = np.array([np.cos(self.yaw), np.sin(self.yaw)])
        left = np.array([-fwd[1], fwd[0]])
        c["pelvis"] = np.stack([self.center[0] + left[0] * sway, self.center[1] + left[1] * sway,
                                STAND_PELVIS + 0.004 * np.sin(2 * np.pi * 0.25 * tl + self.phase)], -1)
        c["head_yaw"] = 0.25 * np.sin(2 * np.pi * 0.2 * tl + self.phase) * _smoothstep(tl / 0.5)
        c["pelvis_roll"] = 0.02 * np.sin(2 * np.pi * 0.35 * tl + self.phase)
        _stance_feet(c, np.asarray(self.center, float), self.yaw)
        return c


@dataclass
class _Squat(_Stand):
    depth: float = 0.36
    reps: int = 1
    depths: tuple = ()  # pelvis drop of each rep (m); default ``depth`` for all

    def rep_windows(self) -> np.ndarray:
        """(reps, 2) local start and end times (s) of each rep; its bottom is halfway."""
        k = np.arange(self.reps)
        return np.stack([k, k + 1], -1) * self.duration / self.reps

    def controls(self, tl):
        c = super().controls(tl)
        u = np.clip(tl / self.duration, 0, 1) * self.reps
        bump = np.sin(np.pi * u) ** 2
        depth = np.asarray(self.depths or (self.depth,) * self.reps, float)[np.minimum(u.astype(int), self.reps - 1)]
        fwd = np.array([np.cos(self.yaw), np.sin(self.yaw), 0.0])
        c["pelvis"] = c["pelvis"] - bump[:, None] * (depth[:, None] * np.array([0, 0, 1.0]) + 0.13 * fwd)
        c["pelvis_pitch"] = 0.35 * bump
        c["spine_pitch"] = 0.25 * bump
        c["head_pitch"] = -0.35 * bump
        for s in ("l", "r"):
            c[f"{s}_flex"] = 0.05 + 1.35 * bump
            c[f"{s}_abd"] = 0.12 - 0.05 * bump
            c[f"{s}_elbow"] = 0.2 - 0.1 * bump
        return c


@dataclass
class _Lunge(_Stand):
    """Forward lunges, the leading leg alternating (left first): step out, lower, rise, step back."""

    reps: int = 2
    step: float = 0.6

    rep_windows = _Squat.rep_windows

    def controls(self, tl):
        c = super().controls(tl)
        u = np.clip(tl / self.duration, 0, 1) * self.reps
        k = np.minimum(u.astype(int), self.reps - 1)
        f = u - k
        out = np.where(f < 0.5, _smoothstep(f / 0.25), _smoothstep((1.0 - f) / 0.25))
        low = np.where((f > 0.25) & (f < 0.75), np.sin(np.pi * (f - 0.25) / 0.5) ** 2, 0.0)
        lift = np.where(f < 0.25, np.sin(np.pi * f / 0.25), np.where(f > 0.75, np.sin(np.pi * (1 - f) / 0.25), 0.0))
        fwd = np.array([np.cos(self.yaw), np.sin(self.yaw), 0.0])
        c["pelvis"] = c["pelvis"] + (0.5 * self.step * out)[:, None] * fwd
        c["pelvis"][:, 2] -= 0.12 * out + 0.22 * low
        for side, lead in (("l", k % 2 == 0), ("r", k % 2 == 1)):
            ankle = c[f"{side}_ankle"] + np.where(lead, self.step * out, 0.0)[:, None] * fwd
            ankle[:, 2] += np.where(lead, 0.06 * lift, 0.0)
            c[f"{side}_ankle"] = ankle
        c["spine_pitch"] = 0.1 * low
        return c


@dataclass
class _ArmRaises(_Stand):
    """Lateral raises with both arms, ``reps`` times (to about 150 deg of abduction)."""

    reps: int = 3

    rep_windows = _Squat.rep_windows

    def controls(self, tl):
        c = super().controls(tl)
        bump = np.sin(np.pi * np.clip(tl / self.duration, 0, 1) * self.reps) ** 2
        for s in ("l", "r"):
            c[f"{s}_abd"] = 0.12 + 2.5 * bump
            c[f"{s}_elbow"] = 0.2 - 0.12 * bump
        c["head_yaw"] = c["head_yaw"] * (1 - bump)
        return c


@dataclass
class _ArmRaise(_Stand):
    def rep_windows(self) -> np.ndarray:
        """The one lateral raise (both arms overhead) fills the first half of the segment."""
        return np.array([[0.0, 0.5 * self.duration]])

    def controls(self, tl):
        c = super().controls(tl)
        u = np.clip(tl / self.duration, 0, 1)
        side = np.sin(np.pi * np.clip(u / 0.5, 0, 1)) ** 2  # both arms out and overhead
        front_l = np.sin(np.pi * np.clip((u - 0.5) / 0.25, 0, 1)) ** 2
        front_r = np.sin(np.pi * np.clip((u - 0.75) / 0.25, 0, 1)) ** 2
        c["l_abd"] = 0.12 + 2.6 * side
        c["r_abd"] = 0.12 + 2.6 * side
        c["l_flex"] = 0.05 + 2.2 * front_l
        c["r_flex"] = 0.05 + 2.2 * front_r
        c["l_elbow"] = 0.2 - 0.15 * np.maximum(side, front_l)
        c["r_elbow"] = 0.2 - 0.15 * np.maximum(side, front_r)
        c["head_pitch"] = -0.25 * side
        c["head_yaw"] = c["head_yaw"] * (1 - side)
        return c


@dataclass
class _Arc:
    """Planar path: start point, heading, curvature; exact tangent."""

    start: np.ndarray
    heading: float
    curvature: float

    def point(self, s):
        s = np.asarray(s, float)
        k = self.curvature
        h0 = self.heading
        if abs(k) < 1e-9:
            x = self.start[0] + s * np.cos(h0)
            y = self.start[1] + s * np.sin(h0)
        else:
            x = self.start[0] + (np.sin(h0 + k * s) - np.sin(h0)) / k
            y = self.start[1] - (np.cos(h0 + k * s) - np.cos(h0)) / k
        return np.stack([x, y], -1)

    def tangent_angle(self, s):
        return self.heading + self.curvature * np.asarray(s, float)


@dataclass
class _Walk(_Segment):
    path: _Arc
    n_steps: int
    step: float = 0.5
    speed: float = 0.9
    ramp: float = 0.45

    def __post_init__(self):
        self.s0 = self.step / 2
        self.travel = self.n_steps * self.step
        self.duration = self.travel / self.speed + self.ramp

    def _progress(self, tl):
        v, r, T = self.speed, self.ramp, self.duration
        t = np.clip(tl, 0, T)
        s = np.where(t < r, v * t * t / (2 * r), v * (t - r / 2))
        tail = T - t
        s = np.where(tail < r, self.travel - v * tail * tail / (2 * r), s)
        return self.s0 + s

    def _footprint(self, s, sign):
        p = self.path.point(s)
        h = self.path.tangent_angle(s)
        n = np.stack([-np.sin(h), np.cos(h)], -1) * sign * FOOT_HALF_GAP
        return np.concatenate([p + n, np.full(p.shape[:-1] + (1,), ANKLE_HEIGHT)], -1), h + sign * TOE_OUT

    @property
    def end_lead(self) -> float:
        """Arc position of the leading footprint when the walk stops."""
        return self.s0 + self.travel + self.step / 2

    def controls(self, tl):
        c = _rest(tl.size)
        sp = self._progress(tl)
        cl = (sp - self.s0) / (2 * self.step) + 0.55  # left foot's gait cycle position
        heading = self.path.tangent_angle(sp)
        for side, sign, phi in (("l", 1.0, 0.55), ("r", -1.0, 1.05)):
            cyc = cl - 0.55 + phi
            n = np.floor(cyc)
            frac = cyc - n
            s_a = self.s0 + (n + 0.3 - phi) * 2 * self.step
            pa, ya = self._footprint(s_a, sign)
            pb, yb = self._footprint(s_a + 2 * self.step, sign)
            swing = frac >= 0.6
            u = np.where(swing, (frac - 0.6) / 0.4, 0.0)
            w = _smoothstep(u)[:, None]
            pos = pa + (pb - pa) * w
            pos[:, 2] += 0.075 * np.sin(np.pi * u)
            c[f"{side}_ankle"] = pos
            c[f"{side}_foot_yaw"] = ya + _wrap(yb - ya) * w[:, 0]
            c[f"{side}_foot_pitch"] = np.where(swing, -0.35 * np.sin(np.pi * u) + 0.25 * np.sin(2 * np.pi * u), 0.0)
        pp = self.path.point(sp)
        left = np.stack([-np.sin(heading), np.cos(heading)], -1)
        ph = 2 * np.pi * cl
        amp = np.clip((sp - self.s0) / 0.3, 0, 1) * np.clip((self.s0 + self.travel - sp) / 0.3, 0, 1)
        sway = 0.018 * np.sin(ph - np.pi / 2) * amp
        bob = -0.012 * np.cos(4 * np.pi * (cl - 0.05)) * amp
        c["pelvis"] = np.concatenate([pp + left * sway[:, None], (WALK_PELVIS + bob)[:, None]], -1)
        c["yaw"] = heading + 0.07 * np.sin(ph) * amp
        c["spine_yaw"] = -0.1 * np.sin(ph) * amp
        c["spine_pitch"] = 0.04 * amp
        c["l_flex"] = 0.05 - 0.35 * np.cos(ph) * amp
        c["r_flex"] = 0.05 + 0.35 * np.cos(ph) * amp
        c["l_elbow"] = 0.3 + 0.15 * np.maximum(0, -np.cos(ph)) * amp
        c["r_elbow"] = 0.3 + 0.15 * np.maximum(0, np.cos(ph)) * amp
        return c


@dataclass
class _Transition(_Segment):
    """Blend two control states; feet that must move step there one after the other."""

    a: dict
    b: dict
    duration: float = 0.0

    def __post_init__(self):
        moves = []
        for side in ("l", "r"):
            dist = float(np.linalg.norm(self.b[f"{side}_ankle"][:2] - self.a[f"{side}_ankle"][:2]))
            turn = abs(float(_wrap(self.b[f"{side}_foot_yaw"] - self.a[f"{side}_foot_yaw"])))
            if dist > 0.01 or turn > 0.05:
                moves.append((dist + 0.3 * turn, side))
        self.moves = [side for _, side in sorted(moves, reverse=True)]
        if not self.duration:
            self.duration = 0.35 + 0.45 * len(self.moves)

    def controls(self, tl):
        u = np.clip(tl / self.duration, 0, 1)
        s = _smoothstep(u)
        c = {}
        for k in _KEYS_SCALAR:
            d = _wrap(self.b[k] - self.a[k]) if k in _ANGLE_KEYS else self.b[k] - self.a[k]
            c[k] = self.a[k] + d * s
        c["pelvis"] = self.a["pelvis"] + (self.b["pelvis"] - self.a["pelvis"]) * s[:, None]
        n = max(1, len(self.moves))
        for side in ("l", "r"):
            pa, pb = self.a[f"{side}_ankle"], self.b[f"{side}_ankle"]
            if side in self.moves:
                i = self.moves.index(side)
                lu = np.clip((u * n - i) * 1.0, 0, 1)  # this foot's share of the transition
                w = _smoothstep(lu)
                pos = pa + (pb - pa) * w[:, None]
                pos[:, 2] += min(0.07, 0.03 + 0.2 * float(np.linalg.norm(pb - pa))) * np.sin(np.pi * lu)
                ya, yb = self.a[f"{side}_foot_yaw"], self.b[f"{side}_foot_yaw"]
                c[f"{side}_foot_yaw"] = ya + _wrap(yb - ya) * w
                c[f"{side}_foot_pitch"] = self.a[f"{side}_foot_pitch"] * (1 - w) + self.b[f"{side}_foot_pitch"] * w
            else:
                pos = np.broadcast_to(pa + (pb - pa) * 0, (u.size, 3)).copy()
                c[f"{side}_foot_yaw"] = np.full(u.size, self.a[f"{side}_foot_yaw"])
            c[f"{side}_ankle"] = pos
        return c


# ------------------------------------------------------------------ forward kinematics
def forward_kinematics(c: dict) -> np.ndarray:
    """Controls (dict of (T,) / (T, 3) arrays) -> joints (T, 26, 3) in HALPE26 order."""
    names = HALPE26.joint_names
    T = c["yaw"].shape[0]
    out = np.zeros((T, len(names), 3))
    idx = {n: i for i, n in enumerate(names)}
    r_pelvis = _rz(c["yaw"]) @ _ry(c["pelvis_pitch"]) @ _rx(c["pelvis_roll"])
    r_torso = r_pelvis @ _rz(c["spine_yaw"]) @ _ry(c["spine_pitch"]) @ _rx(c["spine_roll"])
    pelvis = c["pelvis"]
    out[:, idx["hip"]] = pelvis
    neck = pelvis + _apply(r_torso, np.array([0.0, 0.0, TORSO]))
    out[:, idx["neck"]] = neck
    r_head = r_torso @ _rz(c["head_yaw"]) @ _ry(c["head_pitch"])
    for name, off in HEAD_OFFSETS.items():
        out[:, idx[name]] = neck + _apply(r_head, np.array(off))
    down = np.array([0.0, 0.0, -1.0])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s = side[0]
        shoulder = neck + _apply(r_torso, SHOULDER * np.array([1.0, sign, 1.0]))
        r_upper = r_torso @ _rx(sign * c[f"{s}_abd"]) @ _ry(-c[f"{s}_flex"])
        elbow = shoulder + UPPER_ARM * _apply(r_upper, down)
        wrist = elbow + FOREARM * _apply(r_upper @ _ry(-c[f"{s}_elbow"]), down)
        out[:, idx[f"{side}_shoulder"]] = shoulder
        out[:, idx[f"{side}_elbow"]] = elbow
        out[:, idx[f"{side}_wrist"]] = wrist
        # leg: two-bone IK from the hip joint to the ankle target, knee towards the toes
        hip = pelvis + _apply(r_pelvis, np.array([0.0, sign * HIP_HALF_WIDTH, 0.0]))
        ankle = c[f"{s}_ankle"]
        v = ankle - hip
        d = np.linalg.norm(v, axis=-1, keepdims=True)
        u = v / d
        dc = np.clip(d, abs(THIGH - SHANK) + 0.05, (THIGH + SHANK) * 0.9995)
        ankle = hip + u * dc  # only moves when out of reach (never, by construction of the motion)
        a = (THIGH**2 - SHANK**2 + dc**2) / (2 * dc)
        hgt = np.sqrt(np.maximum(THIGH**2 - a**2, 0.0))
        fyaw = c[f"{s}_foot_yaw"]
        pole = np.stack([np.cos(fyaw), np.sin(fyaw), np.zeros_like(fyaw)], -1)
        pole = pole - (pole * u).sum(-1, keepdims=True) * u
        pole /= np.linalg.norm(pole, axis=-1, keepdims=True)
        knee = hip + a * u + hgt * pole
        out[:, idx[f"{side}_hip"]] = hip
        out[:, idx[f"{side}_knee"]] = knee
        out[:, idx[f"{side}_ankle"]] = ankle
        r_foot = _rz(fyaw) @ _ry(c[f"{s}_foot_pitch"])
        for part, off in FOOT_OFFSETS.items():
            o = np.array(off) * np.array([1.0, sign, 1.0])
            out[:, idx[f"{side}_{part}"]] = ankle + _apply(r_foot, o)
    return out


# ------------------------------------------------------------------ the program
class PersonMotion:
    """A seeded motion program, evaluated at any times (seconds from the start).

    The program is generated segment by segment from the seed until it covers
    ``duration_s``; a longer duration gives the same motion with more
    appended, so every process that builds it from the same seed agrees.
    Times outside ``[0, duration]`` are clamped.
    """

    floor_half = 1.8  # the walking area: |x|, |y| <= floor_half - 0.15 (pelvis)

    def __init__(self, duration_s: float = 10.0, seed: int = 0, program: str = "mixed"):
        if program not in PROGRAMS:
            raise ValueError(f"unknown motion program {program!r}; known: {', '.join(PROGRAMS)}")
        self.seed = int(seed)
        self.program = program
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xB0D7]))
        self.segments: list[_Segment] = []
        pos = rng.uniform(-0.6, 0.6, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        cycle = 0
        self._add(_Stand(pos, yaw, 0.3, rng.uniform(0, 6)))
        while self.total_duration < duration_s + 1.0:
            walk = self._plan_walk(rng, pos, max_steps=7 if cycle == 0 else 10)
            if abs(_wrap(walk.path.heading - yaw)) > 0.05:  # turn on the spot to face the way
                self._add(_Stand(pos, walk.path.heading, 0.1, rng.uniform(0, 6)))
            self._add(walk)
            pos = walk.path.point(walk.end_lead)
            yaw = float(walk.path.tangent_angle(walk.end_lead))
            self._add(_Stand(pos, yaw, 0.2, rng.uniform(0, 6)))
            if program == "workout":
                yaw = self._add_workout(rng, pos)
            else:
                acts = [_Squat, _ArmRaise] if cycle % 2 == 0 else [_ArmRaise, _Squat]
                for act in acts:
                    dur = rng.uniform(1.6, 2.0) if act is _Squat else rng.uniform(2.2, 2.6)
                    self._add(act(pos, yaw, dur, rng.uniform(0, 6)))
            self._add(_Stand(pos, yaw, 0.3, rng.uniform(0, 6)))
            turn = rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 2 * np.pi / 3)
            yaw = float(_wrap(yaw + turn))
            self._add(_Stand(pos, yaw, 0.5, rng.uniform(0, 6)))
            cycle += 1
        self.starts = np.cumsum([0.0] + [s.duration for s in self.segments[:-1]])

    def _add_workout(self, rng, pos) -> float:
        """Facing the middle of the floor (lunges step that way, staying in the cameras' views): a
        set of squats (some shallower than others), of lunges and of lateral arm raises."""
        yaw = float(np.arctan2(-pos[1], -pos[0]))
        self._add(_Stand(pos, yaw, 0.3, rng.uniform(0, 6)))
        n = int(rng.integers(3, 6))
        self._add(_Squat(pos, yaw, n * rng.uniform(1.7, 2.1), rng.uniform(0, 6), reps=n,
                         depths=tuple(rng.uniform(0.2, 0.38, n))))
        self._add(_Stand(pos, yaw, 0.6, rng.uniform(0, 6)))
        n = int(rng.integers(2, 5))
        self._add(_Lunge(pos, yaw, n * rng.uniform(2.0, 2.4), rng.uniform(0, 6), reps=n))
        self._add(_Stand(pos, yaw, 0.6, rng.uniform(0, 6)))
        n = int(rng.integers(3, 6))
        self._add(_ArmRaises(pos, yaw, n * rng.uniform(1.8, 2.2), rng.uniform(0, 6), reps=n))
        return yaw

    def exercise_reps(self, t0: float = 0.0, t1: float | None = None) -> dict[str, np.ndarray]:
        """The true repetitions done entirely within ``[t0, t1]`` seconds, as the times of their
        peaks (a squat's or lunge's bottom, an arm raise's top):
        ``{"squat": times, "lunge": times, "arm_raise": times}`` (s).  In the
        mixed program each squat is one rep and each arm-raise sequence one lateral raise (both
        arms out and overhead; the single-arm forward raises after it are not lateral raises)."""
        t1 = self.total_duration if t1 is None else t1
        out: dict[str, list] = {name: [] for name in _REP_KINDS.values()}
        for start, seg in zip(self.starts, self.segments):
            kind = _REP_KINDS.get(type(seg))
            if kind:
                win = start + seg.rep_windows()
                inside = (win[:, 0] >= t0) & (win[:, 1] <= t1)
                out[kind].extend(win[inside].mean(-1))
        return {k: np.array(v) for k, v in out.items()}

    @property
    def total_duration(self) -> float:
        return float(sum(s.duration for s in self.segments))

    def _add(self, seg: _Segment) -> None:
        if self.segments:
            prev = self.segments[-1]
            self.segments.append(_Transition(prev.at(prev.duration), seg.at(0.0)))
        self.segments.append(seg)

    def _plan_walk(self, rng, pos, max_steps: int = 10) -> _Walk:
        lim = self.floor_half - 0.15
        for _ in range(200):
            heading = rng.uniform(-np.pi, np.pi)
            curvature = rng.choice([-1.0, 1.0]) * rng.uniform(0.55, 1.1)  # turning radius 0.9-1.8 m
            n_steps = int(rng.integers(4, max_steps))
            arc = _Arc(np.asarray(pos, float), float(heading), float(curvature))
            walk = _Walk(arc, n_steps)
            pts = arc.point(np.linspace(0, walk.end_lead + 0.3, 50))
            if np.all(np.abs(pts) <= lim):
                return walk
        return _Walk(_Arc(np.asarray(pos, float), float(np.arctan2(-pos[1], -pos[0])), 0.0), 3)

    def controls(self, t: np.ndarray) -> dict:
        t = np.clip(np.asarray(t, float).ravel(), 0.0, self.total_duration)
        seg_idx = np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.segments) - 1)
        out = _rest(t.size)
        for si in np.unique(seg_idx):
            sel = seg_idx == si
            c = self.segments[si].controls(t[sel] - self.starts[si])
            for k, v in c.items():
                out[k][sel] = v
        return out

    def joints(self, t) -> np.ndarray:
        """Joints (..., 26, 3) at times ``t`` (seconds, any shape)."""
        t = np.asarray(t, float)
        return forward_kinematics(self.controls(t)).reshape(t.shape + (HALPE26.n_joints, 3))

    def activity(self, t) -> np.ndarray:
        """Name of the segment ('stand', 'walk', 'squat', 'armraise', 'transition') at times t."""
        t = np.clip(np.asarray(t, float), 0.0, self.total_duration)
        seg_idx = np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.segments) - 1)
        names = np.array([type(s).__name__.strip("_").lower() for s in self.segments])
        return names[seg_idx]


PROGRAMS = ("mixed", "workout")
_REP_KINDS = {_Squat: "squat", _Lunge: "lunge", _ArmRaises: "arm_raise", _ArmRaise: "arm_raise"}


def simulate_person(n_frames: int, fps: float = 30.0, seed: int = 0) -> np.ndarray:
    """(n_frames, 26, 3) Halpe-26 joints (order ``HALPE26.joint_names``), metres, world frame
    (z up), sampled at ``frame / fps`` seconds.  Same seed -> same motion."""
    motion = PersonMotion(duration_s=n_frames / float(fps), seed=seed)
    return motion.joints(np.arange(n_frames) / float(fps))
