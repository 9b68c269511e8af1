"""Scoring several people's 3D against the crowd studio's truth: who matched whom, switches, errors.

Per frame the tracked people are matched to the true people present by an
optimal assignment on the mean joint distance (gate ``gate_m``); then:

* **identity switches**: per true person, the times its matched id differs
  from the id it last matched (a person who leaves and comes back under a new
  id counts one);
* **missed**: person-frames a true person is present, seen by >= 2 cameras,
  and matched to nobody; **invented**: track-frames matched to nobody;
* **MPJPE** per true person (mm, over matched frames and joints both have);
* **coverage**: fraction of the true joints of seen person-frames that have a
  3D point in the matched track.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class CrowdScore:
    switches: int
    missed: int  # person-frames
    invented: int  # track-frames
    person_frames: int  # seen true person-frames
    mpjpe_mm: np.ndarray  # (P_true,)
    coverage: float
    match: np.ndarray  # (F, P_true) matched track id (0: none)

    def row(self) -> dict:
        return {"switches": self.switches, "missed": self.missed, "invented": self.invented,
                "person_frames": self.person_frames, "coverage": self.coverage,
                "mpjpe_mm": self.mpjpe_mm.round(1).tolist()}


def _mean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) mean joint distance of poses a (n, J, 3) and b (m, J, 3) over common joints (inf: none)."""
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    ok = np.isfinite(d)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 3, np.where(ok, d, 0.0).sum(-1) / n, np.inf)


def score_crowd(points: np.ndarray, person_ids: np.ndarray, truth: np.ndarray, seen: np.ndarray,
                gate_m: float = 0.5) -> CrowdScore:
    """points (T, F, J, 3) tracked, person_ids (T,), truth (P, F, J, 3) (NaN while away),
    seen (P, F) bool: the true person is detected in >= 2 cameras that frame."""
    n_t, n_f = points.shape[:2]
    n_p = truth.shape[0]
    match = np.zeros((n_f, n_p), int)
    err_sum = np.zeros(n_p)
    err_n = np.zeros(n_p)
    covered = total = 0
    invented = 0
    for f in range(n_f):
        has_t = np.isfinite(points[:, f]).all(-1).sum(-1) >= 3
        has_p = np.isfinite(truth[:, f]).all(-1).any(-1)
        ti, pi = np.flatnonzero(has_t), np.flatnonzero(has_p)
        rows = cols = np.zeros(0, int)
        if ti.size and pi.size:
            cost = _mean_distance(truth[pi, f], points[ti, f])
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            ok = cost[rows, cols] < gate_m
            rows, cols = rows[ok], cols[ok]
        for r, c in zip(rows, cols):
            p, t = pi[r], ti[c]
            match[f, p] = person_ids[t]
            d = np.linalg.norm(points[t, f] - truth[p, f], axis=-1)
            fin = np.isfinite(d)
            err_sum[p] += d[fin].sum()
            err_n[p] += fin.sum()
        invented += ti.size - len(cols)
        for p in np.flatnonzero(seen[:, f]):
            total += np.isfinite(truth[p, f]).all(-1).sum()
            t = ti[cols[rows == np.flatnonzero(pi == p)[0]]] if p in pi[rows] else None
            if t is not None and len(t):
                covered += (np.isfinite(points[t[0], f]).all(-1) & np.isfinite(truth[p, f]).all(-1)).sum()
    switches = 0
    for p in range(n_p):
        ids = match[:, p][match[:, p] > 0]
        switches += int((np.diff(ids) != 0).sum()) if ids.size > 1 else 0
    missed = int((seen & (match.T == 0)).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mpjpe = 1000.0 * err_sum / err_n
    return CrowdScore(switches, missed, int(invented), int(seen.sum()), mpjpe, covered / max(total, 1), match)


def score_by_cycle(points: np.ndarray, ids: np.ndarray, truth: np.ndarray, seen: np.ndarray,
                   cycle: np.ndarray) -> dict:
    """Tracks (T, N, J, 3) with ``ids`` (T,) against ``truth`` (P, N, J, 3), ``seen`` (P, N), one motion
    ``cycle`` (N,) at a time: where the synthetic motion repeats everybody jumps back to where they
    started, which no tracker bridges (nor should), so identities are scored within a cycle.

    Returns the counts of :func:`rigcap.studio.crowd_score.score_crowd` summed over the cycles,
    ``coverage``, ``mpjpe_mm_per_person`` (P,) and ``error_mm`` (T, N, J): each track's distance (mm)
    to the true person it is matched to at that instant, NaN where it is matched to nobody."""
    n_p = truth.shape[0]
    err = np.full(points.shape[:3], np.nan)
    per_person = np.full((n_p,) + points.shape[1:3], np.nan)
    counts = {"switches": 0, "missed": 0, "invented": 0, "person_frames": 0}
    covered = 0.0
    for c in np.unique(cycle):
        at = np.flatnonzero(cycle == c)
        sc = score_crowd(points[:, at], ids, truth[:, at], seen[:, at])
        for key in counts:
            counts[key] += int(getattr(sc, key))
        covered += sc.coverage * sc.person_frames
        inst, person = np.nonzero(sc.match > 0)
        track = np.searchsorted(ids, sc.match[inst, person])
        d = 1000 * np.linalg.norm(points[track, at[inst]] - truth[person, at[inst]], axis=-1)
        err[track, at[inst]] = d
        per_person[person, at[inst]] = d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # someone never matched
        mpjpe = np.nanmean(per_person.reshape(n_p, -1), axis=1)
    return {**counts, "coverage": covered / max(counts["person_frames"], 1),
            "mpjpe_mm_per_person": [float(v) for v in mpjpe], "error_mm": err}
