"""A rig: the ordered set of calibrated cameras every stage shares.

Order matters: axis 0 of every per-camera array (2D keypoints, projections,
detections) follows ``rig.names``.  Methods are vectorised over cameras and
over any leading point shape, in the spirit of aniposelib's ``CameraGroup``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from calibration.camera import Camera


@dataclass
class Rig:
    cameras: list[Camera]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(dupes)}")

    # --------------------------------------------------------- container
    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            return self.cameras[self.index(key)]
        return self.cameras[key]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no camera named {name!r} in the rig (cameras: {', '.join(self.names)})") from None

    def subset(self, names: list[str]) -> "Rig":
        """The cameras named, in the order given (to match a keypoint file's order)."""
        return Rig([self[n] for n in names], dict(self.metadata))

    def copy(self) -> "Rig":
        return Rig([c.copy() for c in self.cameras], dict(self.metadata))

    # --------------------------------------------------------- geometry
    @property
    def centers(self) -> np.ndarray:
        """(C, 3) camera centres, world metres."""
        return np.array([c.center for c in self.cameras])

    @property
    def projection_matrices(self) -> np.ndarray:
        """(C, 3, 4) ``K [R|t]`` per camera."""
        return np.array([c.projection_matrix for c in self.cameras])

    @property
    def extrinsics(self) -> np.ndarray:
        """(C, 3, 4) ``[R|t]`` per camera: the matrices to use with normalised coordinates."""
        return np.array([np.hstack([c.R, c.tvec[:, None]]) for c in self.cameras])

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixels (C, ..., 2) in every camera."""
        return np.stack([c.project(points) for c in self.cameras])

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (C, ..., 2) -> normalised undistorted coordinates (C, ..., 2)."""
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.shape[0] != len(self):
            raise ValueError(f"pixels have {pixels.shape[0]} cameras on axis 0; the rig has {len(self)}")
        return np.stack([c.undistort(p) for c, p in zip(self.cameras, pixels)])

    def reprojection_error(self, points: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """Pixel distance (C, ...) between observed pixels (C, ..., 2) and projected points (..., 3)."""
        return np.linalg.norm(self.project(points) - np.asarray(pixels, dtype=np.float64), axis=-1)


# ------------------------------------------------------------ image sizes
def size_mismatch_warnings(rig: Rig, sizes: dict[str, tuple[int, int]], what: str = "the video") -> list[str]:
    """One warning per camera whose rig image size differs from ``sizes[name]`` (w, h) of its images.

    Why a warning, not silence: pixel coordinates only mean something at the
    size the lens was calibrated at.  A few pixels of padding (a Qualisys
    export says 1088 px where the video is 1080) shift nothing that matters,
    another resolution shifts everything; either way the user must hear it.
    """
    out = []
    for name, size in sizes.items():
        if size is None or name not in rig.names:
            continue
        mine = tuple(int(v) for v in rig[name].size)
        theirs = tuple(int(v) for v in size)
        if mine != theirs:
            out.append(f"camera {name!r}: the rig's image size is {mine[0]}x{mine[1]} but {what} is "
                       f"{theirs[0]}x{theirs[1]}")
    return out


def keypoint_extent_warnings(rig: Rig, pixels: np.ndarray, names: list[str], margin: float = 0.02) -> list[str]:
    """Warnings for cameras whose 2D points ``pixels (C, ..., >=2)`` reach beyond the rig's image size.

    Keypoint files carry no image size, so the extent of the points is the
    evidence: a detector never puts a point more than ``margin`` of the image
    outside it, so points up to x = 1900 in a camera the rig says is 1280 wide
    mean the rig belongs to another resolution.
    """
    out = []
    for c, name in enumerate(names):
        if name not in rig.names:
            continue
        xy = np.asarray(pixels[c], dtype=np.float64)[..., :2].reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if xy.size == 0:
            continue
        w, h = rig[name].size
        hi = xy.max(axis=0)
        lo = xy.min(axis=0)
        if hi[0] > w * (1 + margin) or hi[1] > h * (1 + margin) or lo[0] < -w * margin or lo[1] < -h * margin:
            out.append(f"camera {name!r}: the rig's image size is {w}x{h} but its 2D points span x "
                       f"{lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f} px: was it calibrated at another "
                       "resolution?")
    return out
