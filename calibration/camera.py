"""One calibrated camera, in OpenCV's conventions so numbers move between tools unchanged.

Model (the same as ``cv2.projectPoints``):

* world -> camera: ``x_cam = R @ x_world + t``, metres; ``R`` stored as a
  Rodrigues vector ``rvec``.
* pinhole with distortion ``k1 k2 p1 p2 k3`` (4, 5, 8, 12 or 14 coefficients
  accepted), or the fisheye model ``k1..k4`` when ``fisheye`` is set; all of it
  in :mod:`calibration.lens_model`, the camera matrix's skew ``K[0, 1]``
  included.
* pixel centres at integer coordinates, ``size = (width, height)``.

All geometric methods take any leading shape ``(..., 3)`` / ``(..., 2)`` so one
call covers frames x joints without a Python loop; NaN in gives NaN out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration import lens_model


def rodrigues_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrices from Rodrigues vectors, vectorised over leading axes."""
    rvec = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(rvec, axis=-1, keepdims=True)
    small = theta < 1e-12
    axis = np.where(small, 0.0, rvec / np.where(small, 1.0, theta))
    kx, ky, kz = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(
        axis.shape[:-1] + (3, 3)
    )
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + s * kmat + (1.0 - c) * (kmat @ kmat)


def matrix_to_rodrigues(rmat: np.ndarray) -> np.ndarray:
    """Rodrigues vector of one rotation matrix (OpenCV's, for its edge cases)."""
    rvec, _ = cv2.Rodrigues(np.asarray(rmat, dtype=np.float64))
    return rvec.reshape(3)


@dataclass
class Camera:
    """Intrinsics, distortion and pose of one camera (see module docstring for units)."""

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    rvec: np.ndarray = field(default_factory=lambda: np.zeros(3))
    tvec: np.ndarray = field(default_factory=lambda: np.zeros(3))
    fisheye: bool = False

    def __post_init__(self) -> None:
        self.name = str(self.name)
        self.size = (int(self.size[0]), int(self.size[1]))
        self.matrix = np.asarray(self.matrix, dtype=np.float64).reshape(3, 3)
        self.dist = np.asarray(self.dist, dtype=np.float64).ravel()
        self.rvec = np.asarray(self.rvec, dtype=np.float64).reshape(3)
        self.tvec = np.asarray(self.tvec, dtype=np.float64).reshape(3)
        allowed = lens_model.FISHEYE_SIZES if self.fisheye else lens_model.PINHOLE_SIZES
        if self.dist.size not in allowed:
            raise ValueError(
                f"camera {self.name!r}: {self.dist.size} distortion coefficients; "
                f"expected one of {allowed} ({'fisheye k1..k4' if self.fisheye else 'k1 k2 p1 p2 [k3 ...]'})"
            )

    # ----------------------------------------------------------------- pose
    @property
    def R(self) -> np.ndarray:
        """Rotation ``cam_from_world`` (3, 3); cached on the Rodrigues vector's value (hot in live use)."""
        key = self.rvec.tobytes()
        cached = self.__dict__.get("_R_cache")
        if cached is None or cached[0] != key:
            rmat = rodrigues_to_matrix(self.rvec)
            rmat.setflags(write=False)
            cached = (key, rmat)
            self.__dict__["_R_cache"] = cached
        return cached[1]

    @R.setter
    def R(self, rmat: np.ndarray) -> None:
        self.rvec = matrix_to_rodrigues(rmat)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, metres: ``-R^T t``."""
        return -self.R.T @ self.tvec

    @property
    def extrinsic(self) -> np.ndarray:
        """4x4 ``cam_from_world`` transform."""
        out = np.eye(4)
        out[:3, :3] = self.R
        out[:3, 3] = self.tvec
        return out

    @property
    def projection_matrix(self) -> np.ndarray:
        """3x4 ``K [R | t]``: maps homogeneous world points to *undistorted* pixels."""
        return self.matrix @ np.hstack([self.R, self.tvec[:, None]])

    @property
    def focal(self) -> np.ndarray:
        return np.array([self.matrix[0, 0], self.matrix[1, 1]])

    @property
    def principal_point(self) -> np.ndarray:
        return np.array([self.matrix[0, 2], self.matrix[1, 2]])

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in world metres -> camera frame (..., 3)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.R.T + self.tvec

    # ----------------------------------------------------------- projection
    @property
    def distortion_model(self) -> str:
        """``"fisheye"`` or ``"pinhole"``: the model name :mod:`calibration.lens_model` takes."""
        return lens_model.model_of(self.fisheye)

    def distort_normalized(self, xy: np.ndarray) -> np.ndarray:
        """Apply lens distortion to normalised image coordinates (..., 2)."""
        return lens_model.distort(xy, self.dist, self.distortion_model)

    def normalized_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Normalised (distorted) coordinates -> pixels through the full camera matrix, skew included."""
        return lens_model.normalized_to_pixels(xy, self.matrix)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> distorted pixel coordinates (..., 2).

        Points behind the camera (z <= 0) come out as NaN instead of a
        mirrored, plausible-looking pixel.
        """
        return lens_model.project(self.world_to_camera(points), self.matrix, self.dist, self.distortion_model)

    # --------------------------------------------------------- undistortion
    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels (..., 2) -> normalised undistorted coordinates (..., 2).

        The result ``(x, y)`` satisfies ``x_cam ~ (x, y, 1)``, which is what
        triangulation wants: :func:`calibration.lens_model.undistort`, Newton
        to ~1e-9 px, the camera matrix's skew included (OpenCV's
        ``undistortPoints`` ignores it).
        """
        return lens_model.undistort(pixels, self.matrix, self.dist, self.distortion_model)

    def undistort_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels -> undistorted pixels (same camera matrix)."""
        return self.normalized_to_pixels(self.undistort(pixels))

    def copy(self) -> "Camera":
        return Camera(
            self.name, self.size, self.matrix.copy(), self.dist.copy(), self.rvec.copy(),
            self.tvec.copy(), self.fisheye,
        )
