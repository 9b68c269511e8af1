"""Board poses for synthetic calibration recordings: board -> world, metres.

A pose maps board coordinates (OpenCV's ChArUco frame: origin at the outer
corner of the first square, x along the squares' rows, y down the printed
page, z into the board, so a camera sees the printed face when it sits on
the board's -z side) to world coordinates: ``X_world = R(rvec) @ X_board + tvec``.

Three kinds of motion, all smooth in time so the videos look like a person
carrying the board around:

* ``floor``: the board lying still, face up, on the floor at the world origin
  with its x axis along world x (so world = board frame with y and z
  flipped) -- the sighting a calibration uses to set the ground plane;
* ``normal``: the board wanders through the volume (centre within
  ``extent`` of ``center``), its face turning all the way around the ring
  (``turns`` times), tilted up and sideways and rotated in its plane, so
  each camera sees it from many angles, sometimes only partly (near the
  volume's edge) and never when it faces away;
* ``hard``: the board stays nearly upright and faces one side of the ring at a
  time, so no frame shows it to every camera: extrinsics have to be chained
  through camera pairs (the harder 8-camera benchmark).

In both moving modes the person also does what the calibration guide asks
for the lenses: about half of the time (``visits``) the board is carried out
towards the camera ring, 1.3-1.9 m from the cameras on one side, faces them
tilted by up to ~35 deg, and is swept once around a loop that brings it to the
corners and edges of those cameras' images; successive visits go round the
ring, so every camera gets close, well-spread, tilted views (what pins the
principal point, the distortion and the focal length).  Measured (image cells of an
8 x 6 grid that hold a corner of a view with 6+ corners, per camera): 4-camera studio,
120 frames, 46-65 % -> 75-98 %; 8-camera hard, 160 frames, 44-65 % -> 73-100 %.  With
the saddle-refined corners, bench_calibration's worst rotation error went 0.091 -> 0.082
deg (4 cameras) and 0.131 -> 0.031 deg (8 hard), where the principal point had been the
limit.  The trajectory assumes the studio ring (``ring_radius``, cameras aimed at the
volume centre) but knows no camera; ``visits=0`` gives the old wander only.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from calibration.board import BoardDefinition


def _smooth(rng, tau: np.ndarray, n_waves: int = 3, cycles=(0.6, 2.5)) -> np.ndarray:
    """A smooth random signal in about [-1, 1] over normalised time ``tau`` in [0, 1]."""
    freqs = rng.uniform(*cycles, size=n_waves)
    phases = rng.uniform(0, 2 * np.pi, size=n_waves)
    amps = rng.uniform(0.5, 1.0, size=n_waves)
    sig = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * tau[None] + phases[:, None])).sum(0)
    return sig / amps.sum() * 1.6


def board_rotation(face_dir: np.ndarray, inplane_rad: np.ndarray, up_hint: np.ndarray | None = None) -> np.ndarray:
    """(F, 3, 3) board->world rotations whose printed face looks along ``face_dir`` (F, 3)
    with the page's "down" as close to world -z as possible, then turned in the
    board plane by ``inplane_rad``.  ``up_hint`` (F, 3) replaces world -z for
    boards lying flat."""
    f = face_dir / np.linalg.norm(face_dir, axis=-1, keepdims=True)
    z = -f
    down = np.broadcast_to(np.array([0.0, 0.0, -1.0]), f.shape) if up_hint is None else up_hint
    y0 = down - (down * f).sum(-1, keepdims=True) * f
    y0 /= np.linalg.norm(y0, axis=-1, keepdims=True)
    x0 = np.cross(y0, z)
    c, s = np.cos(inplane_rad)[:, None], np.sin(inplane_rad)[:, None]
    x = c * x0 + s * y0
    y = -s * x0 + c * y0
    return np.stack([x, y, z], axis=-1)


def board_trajectory(
    n_frames: int,
    seed: int = 0,
    board: BoardDefinition | None = None,
    mode: str = "normal",
    floor_frames: int | None = None,
    center=(0.0, 0.0, 1.1),
    extent=(1.5, 1.5, 0.7),
    turns: float = 2.0,
    visits: float = 0.5,
    ring_radius: float = 3.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Board->world poses ``(rvecs (F, 3), tvecs (F, 3))`` for ``n_frames`` frames.

    ``mode`` is ``"normal"`` or ``"hard"`` (see module docstring).
    ``floor_frames`` still frames with the board on the floor come first
    (default: 8 % of the frames in normal mode, none in hard mode, where every
    frame must miss some camera).  Use :func:`floor_frame_mask` to find them.
    """
    if mode not in ("normal", "hard"):
        raise ValueError(f"mode must be 'normal' or 'hard', got {mode!r}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    from rigcap.studio.board_video import STUDIO_BOARD

    board = board or STUDIO_BOARD
    width, height = board.size_m
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB0A2D]))
    if floor_frames is None:
        floor_frames = 0 if mode == "hard" else max(1, int(round(0.08 * n_frames))) if n_frames >= 10 else 0
    floor_frames = int(min(max(floor_frames, 0), n_frames))
    n_move = n_frames - floor_frames
    rot = np.zeros((n_frames, 3, 3))
    pos = np.zeros((n_frames, 3))  # board centre

    if floor_frames:
        # face up, x along world x, y along world -y; the origin corner at the world origin
        rot[:floor_frames] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
        pos[:floor_frames] = rot[0] @ np.array([width / 2, height / 2, 0.0])

    if n_move:
        tau = (np.arange(n_move) + 0.5) / n_move
        c = np.asarray(center, float)
        e = np.asarray(extent, float)
        pos[floor_frames:] = c + np.stack([e[i] * np.clip(_smooth(rng, tau), -1, 1) for i in range(3)], -1)
        pos[floor_frames:, 2] = np.maximum(pos[floor_frames:, 2], height * 0.75)  # never through the floor
        azimuth = rng.uniform(0, 2 * np.pi) + 2 * np.pi * turns * tau
        if mode == "normal":
            azimuth = azimuth + np.deg2rad(35) * _smooth(rng, tau, cycles=(3, 7))
            elevation = np.deg2rad(12 + 22 * _smooth(rng, tau, cycles=(2, 6)))
            inplane = np.deg2rad(35 * _smooth(rng, tau, cycles=(1, 5)))
        else:
            azimuth = azimuth + np.deg2rad(15) * _smooth(rng, tau, cycles=(3, 7))
            elevation = np.deg2rad(5 + 12 * _smooth(rng, tau, cycles=(2, 6)))
            inplane = np.deg2rad(25 * _smooth(rng, tau, cycles=(1, 5)))
        face = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], -1)
        if visits > 0:
            w, v_pos, v_face, v_inplane = _visits(rng, tau, n_move, visits, ring_radius, c, mode)
            pos[floor_frames:] = (1 - w[:, None]) * pos[floor_frames:] + w[:, None] * v_pos
            face = (1 - w[:, None]) * face + w[:, None] * v_face
            face += 1e-3 * v_face  # never a zero vector when the two face opposite ways
            inplane = (1 - w) * inplane + w * v_inplane
        rot[floor_frames:] = board_rotation(face, inplane)

    half = np.array([width / 2, height / 2, 0.0])
    tvecs = pos - rot @ half
    rvecs = Rotation.from_matrix(rot).as_rotvec()
    return rvecs, tvecs


VISIT_FRAMES = 10  # frames per visit plateau
VISIT_LATERAL = 0.45  # sideways sweep, x distance to the cameras
VISIT_HEIGHT = (1.45, 0.6)  # board-centre height: middle, half-range (m)


def _visits(rng, tau: np.ndarray, n_move: int, fraction: float, ring_radius: float, center: np.ndarray,
            mode: str):
    """Visits towards the camera ring: blend weight ``w`` (F,) and the visit's board centre (F, 3),
    face direction (F, 3) and in-plane angle (F,).

    One visit per ~15 frames (at least 4), evenly spaced in azimuth round the ring; within a
    visit the board goes once round a rounded rectangle across the image of the cameras it
    faces (lateral +-0.45 x distance, height 0.85-2.05 m: the corners of a 65-77 deg lens at
    1.3-1.9 m), so its corners reach those images' corners and edges.
    """
    n_visits = max(4, int(round(n_move * fraction / VISIT_FRAMES)))
    phase = tau * n_visits
    k = np.minimum(np.floor(phase), n_visits - 1)
    s = phase - k  # 0..1 within a visit
    # plateau of width ~fraction, smooth ramps: a visit, then back to the middle of the volume
    bump = 0.5 - 0.5 * np.cos(2 * np.pi * s)
    w = np.clip((bump - (1 - fraction) * 0.6) / 0.4, 0.0, 1.0)
    w = w * w * (3 - 2 * w)
    az0 = rng.uniform(0, 2 * np.pi)
    az = az0 + k * 2 * np.pi / n_visits + np.deg2rad(8) * _smooth(rng, tau, cycles=(2, 5))
    dist = rng.uniform(1.3, 1.9, n_visits)[k.astype(int)]  # from the cameras
    rho = ring_radius - dist
    lateral = VISIT_LATERAL * dist * np.clip(1.4 * np.sin(2 * np.pi * s), -1, 1)
    height = VISIT_HEIGHT[0] + VISIT_HEIGHT[1] * np.clip(1.4 * np.cos(2 * np.pi * s), -1, 1)
    radial = np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], -1)
    side = np.stack([-np.sin(az), np.cos(az), np.zeros_like(az)], -1)
    pos = rho[:, None] * radial + lateral[:, None] * side
    pos[:, :2] += center[:2]
    pos[:, 2] = height
    # face the cameras on that side, tilted (up to ~35 deg) sideways and up/down so the
    # foreshortening varies (focal length), looking slightly up at cameras mounted high
    yaw = np.deg2rad(35) * _smooth(rng, tau, cycles=(4, 9))
    pitch = np.deg2rad(12 + 25 * _smooth(rng, tau, cycles=(4, 9)))
    face_az = az + yaw
    face = np.stack([np.cos(pitch) * np.cos(face_az), np.cos(pitch) * np.sin(face_az), np.sin(pitch)], -1)
    inplane = np.deg2rad(30 * _smooth(rng, tau, cycles=(2, 6)))
    return w, pos, face, inplane


def floor_frame_mask(rvecs: np.ndarray, tvecs: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """(F,) True where the board lies face up on the floor (z = 0)."""
    rot = Rotation.from_rotvec(rvecs).as_matrix()
    return (np.abs(rot[:, 2, 2] + 1.0) < 1e-9) & (np.abs(tvecs[:, 2]) < tol)


def board_corners_world(board: BoardDefinition, rvecs: np.ndarray, tvecs: np.ndarray) -> np.ndarray:
    """(F, N, 3) the board's ChArUco corners in world coordinates."""
    rot = Rotation.from_rotvec(np.asarray(rvecs, float).reshape(-1, 3)).as_matrix()
    obj = board.corner_points()
    return np.einsum("fij,nj->fni", rot, obj) + np.asarray(tvecs, float).reshape(-1, 1, 3)


def board_faces_camera(camera_centers: np.ndarray, rvecs: np.ndarray, tvecs: np.ndarray) -> np.ndarray:
    """(C, F) True where camera c sees the printed face of the board at frame f."""
    rot = Rotation.from_rotvec(np.asarray(rvecs, float).reshape(-1, 3)).as_matrix()
    rel = np.asarray(camera_centers, float)[:, None, :] - np.asarray(tvecs, float)[None]
    return np.einsum("cfi,fi->cf", rel, rot[:, :, 2]) < 0
