"""Movement analysis on 3D joints: joint angles, exercise repetitions and form, BVH, OpenSim.

* :mod:`~rigcap.analysis.angles` -- every joint angle rigcap reports, with its definition
  (sign, zero, plane, joints; ISB wording where it applies), vectorised over frames.
* :mod:`~rigcap.analysis.points` -- the 3D points file, one person or several.
* :mod:`~rigcap.analysis.exercises` -- exercise definitions (``configs/exercises/*.toml``),
  repetition counting with hysteresis, range of motion per rep, form rules.
* :mod:`~rigcap.analysis.bvh` -- BVH export (offsets from median bone lengths).
* :mod:`~rigcap.analysis.opensim_ik` -- scaling + inverse kinematics through the optional
  ``opensim`` package.
* :mod:`~rigcap.analysis.plots` -- the PNGs.

This package sits above ``triangulate`` (it reads its skeletons and files) and below the
commands; ``capture`` and ``viewer`` may import it.
"""
