"""A camera that sees the board mirrored: a mirrored image, or the board seen from behind?

Two physical cases show the board mirrored (:func:`calibration.detect.detect_frame_or_mirrored`
finds it on the flipped image):

* **the image is mirrored** (a webcam set to mirror, a mirror in the light path): the camera is
  an ordinary camera whose pixels come out flipped left-right.  rigcap writes it as an ordinary
  OpenCV camera in the pixels of the file as recorded: ``K' = F K`` with ``F`` the flip
  ``u -> (w - 1) - u``, i.e. a **negative fx** and ``cx' = w - 1 - cx`` (skew negated; distortion
  and pose unchanged).  ``cv2.projectPoints`` / ``cv2.undistortPoints`` (and so aniposelib and
  Pose2Sim, which call them) give the right pixels with that matrix unchanged, and triangulation
  works on the undistorted rays as for any camera.
* **the board is seen from behind** (a transparent or thin board: its back is the mirror image
  of its front): the camera is ordinary and so are its pixels; its corners are the board's own
  corners, the board's normal just points away from it.  Nothing special is written.

Each hypothesis explains one camera's views alone equally well (they are mirror images of each
other), so the decision uses the other cameras: at the instants both see the board, the
rotation from the candidate to a partner camera is the same at every instant only under the
right hypothesis (:func:`decide_mirrored_images`).  Under the wrong one it wanders by degrees
to tens of degrees as the board turns; under the right one it scatters by the PnP noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.board import BoardDefinition
from calibration.camera import Camera, rodrigues_to_matrix
from calibration.extrinsics_init import board_poses, project_to_rotation, rotation_angle

MIN_SHARED_VIEWS = 3  # instants a candidate must share with decided cameras for a decision


def flip_pixels(corners: np.ndarray, width: int) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` mirrored left-right in an image ``width`` wide."""
    out = np.array(corners, dtype=np.float64, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def flip_pixel_frame(cam: Camera) -> Camera:
    """The same camera (lens, pose) described in left-right mirrored pixels: ``K -> F K``.

    Its own inverse: a mirrored-image camera's file matrix (fx < 0) gives back the ordinary one.
    """
    out = cam.copy()
    f = np.array([[-1.0, 0.0, cam.size[0] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out.matrix = f @ cam.matrix
    return out


def is_mirrored(cam: Camera) -> bool:
    """A camera written with mirrored pixels (negative fx, see the module docstring)."""
    return bool(cam.matrix[0, 0] < 0)


def mirrored_lens(cam: Camera) -> Camera:
    """The ordinary lens that sees, in mirrored pixels, what ``cam`` sees in its own.

    ``cx -> w - 1 - cx``, skew and ``p2`` negated (the Brown-Conrady model is symmetric under
    ``x -> -x`` with ``p2 -> -p2``): what ``calibrateCamera`` returns on flipped corners.
    """
    out = cam.copy()
    out.matrix = cam.matrix.copy()
    out.matrix[0, 2] = cam.size[0] - 1.0 - cam.matrix[0, 2]
    out.matrix[0, 1] = -cam.matrix[0, 1]
    if not cam.fisheye and cam.dist.size >= 4:
        out.dist = cam.dist.copy()
        out.dist[3] = -cam.dist[3]
    return out


@dataclass
class MirrorDecision:
    """Per camera: is its image mirrored; per view: is the board seen from behind; and why."""

    image_mirrored: np.ndarray  # (C,) bool
    back_views: np.ndarray  # (C, F) bool: the board's back faces the camera
    notes: dict[int, str] = field(default_factory=dict)  # camera index -> one line for the report


def _relative_spread(r_c: np.ndarray, r_d: np.ndarray) -> np.ndarray:
    """Degrees by which each instant's camera-to-camera rotation ``R_c R_d^T`` differs from their mean."""
    rel = np.einsum("kij,klj->kil", r_c, r_d)
    mean = project_to_rotation(rel.sum(axis=0))
    return rotation_angle(rel, np.broadcast_to(mean, rel.shape))


def decide_mirrored_images(corners: np.ndarray, mirrored: np.ndarray, cams: list[Camera],
                           board: BoardDefinition, names: list[str],
                           known: np.ndarray | None = None) -> MirrorDecision:
    """Decide, for every camera that found the board mirrored, which physical case it is.

    ``corners (C, F, N, 2)`` in each camera's recorded pixels; ``mirrored (C, F)`` views found on
    the flipped image; ``cams`` lenses calibrated on the recorded pixels (poses unused);
    ``known (C,)`` cameras already known to have mirrored images (a held lens with fx < 0: their
    ``cams`` entry is already the ordinary lens, their corners already flipped by the caller).
    Candidates are decided one by one, the one sharing the most views with decided cameras first,
    each against every decided camera it shares instants with.
    """
    c_n = corners.shape[0]
    known = np.zeros(c_n, bool) if known is None else np.asarray(known, bool)
    image_mirrored = known.copy()
    notes: dict[int, str] = {}
    candidates = [c for c in range(c_n) if mirrored[c].any() and not known[c]]
    if not candidates:
        return MirrorDecision(image_mirrored, mirrored ^ image_mirrored[:, None], notes)
    poses = board_poses(corners, cams, board)
    rots = {c: rodrigues_to_matrix(poses.rvecs[c]) for c in range(c_n)}
    ok = {c: poses.ok[c].copy() for c in range(c_n)}
    decided = [c for c in range(c_n) if c not in candidates]
    left = list(candidates)
    if not decided:
        # every camera saw the board mirrored at times: the geometry cannot tell "no image mirrored" from
        # "every image mirrored" (a mirrored world fits as well), so the camera that sees the board
        # unmirrored in the largest share of its views anchors the others as an ordinary camera
        views = np.isfinite(corners[..., 0]).any(axis=2)
        share = [(views[c] & ~mirrored[c]).sum() / max(views[c].sum(), 1) for c in left]
        anchor = left.pop(int(np.argmax(share)))
        decided.append(anchor)
        notes[anchor] = (f"camera {names[anchor]!r}: sees the board from behind in {int(mirrored[anchor].sum())} of "
                         f"{int(views[anchor].sum())} views (a transparent board); taken as an ordinary camera, the "
                         "reference for the others (it sees the board unmirrored in more of its views than any)")
    while left:
        shared = [sum(int((poses.ok[c] & ok[d]).sum()) for d in decided) for c in left]
        c = left.pop(int(np.argmax(shared)))
        w = cams[c].size[0]
        alt = board_poses(flip_pixels(corners[c:c + 1], w), [mirrored_lens(cams[c])], board)
        hyp = {False: (rots[c], poses.ok[c]), True: (rodrigues_to_matrix(alt.rvecs[0]), alt.ok[0])}
        spread = {}
        for h, (r_c, ok_c) in hyp.items():
            devs = []
            for d in decided:
                both = ok_c & ok[d]
                if both.sum() >= 2:
                    devs.append(_relative_spread(r_c[both], rots[d][both]))
            devs = np.concatenate(devs) if devs else np.zeros(0)
            spread[h] = (float(np.median(devs)) if devs.size >= MIN_SHARED_VIEWS else np.nan, devs.size)
        n_mirr = int(mirrored[c].sum())
        n_views = int(np.isfinite(corners[c, :, :, 0]).any(axis=1).sum())
        if not (np.isfinite(spread[False][0]) and np.isfinite(spread[True][0])):
            choice = False
            notes[c] = (f"camera {names[c]!r}: the board was found mirrored in {n_mirr} of {n_views} views, taken as "
                        f"seen from behind (a transparent board); too few instants shared with other cameras "
                        f"({spread[False][1]}) to tell it from a mirrored image")
        else:
            choice = spread[True][0] < spread[False][0]
            why = (f"camera-to-camera rotations steady to {spread[choice][0]:.2f} deg over {spread[choice][1]} "
                   f"shared instants, vs {spread[not choice][0]:.2f} deg the other way")
            if choice:
                notes[c] = (f"camera {names[c]!r}: its image is mirrored (the board was found mirrored in {n_mirr} of "
                            f"{n_views} views; {why}); the rig file gives it a negative fx (OpenCV convention, "
                            "pixels as recorded)")
            else:
                notes[c] = (f"camera {names[c]!r}: sees the board from behind in {n_mirr} of {n_views} views "
                            f"(a transparent board; {why})")
        image_mirrored[c] = choice
        rots[c], ok[c] = hyp[choice]
        decided.append(c)
    return MirrorDecision(image_mirrored, mirrored ^ image_mirrored[:, None], notes)
