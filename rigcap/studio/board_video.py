"""Render ChArUco board recordings for a synthetic rig, exactly, lens distortion included.

How a frame is made (per camera):

1. The board texture is OpenCV's own image of the board (``board.render``),
   with a white paper margin, at the texture resolution closest to 1.5 texels
   per screen pixel (a small mip pyramid, so far boards do not alias).
2. Every pixel centre's undistorted ray (cached per camera, see
   :mod:`rigcap.studio.scene`) is mapped through the homography
   rays -> board plane -> texture, and the texture is sampled with
   ``cv2.remap`` (bilinear).  Board texel ``(x_m / square * pps + margin - 0.5)``
   is the point ``x_m`` metres along the board, matching OpenCV's pixel-centre
   convention, so the rendered corners sit where :func:`true_board_corners_2d`
   says they are (measured: median detection error ~0.05-0.1 px).
3. The board is lit (Lambert term from its tilt to the room light) and
   composited over the room background; a camera that sees the back of the
   board sees background there, unless the board is ``transparent`` (a print
   on clear film: from behind, the mirror image of its front).
4. Uneven illumination (a smooth gain field per camera, drifting over time),
   Gaussian lens blur (sigma 0.5-1.0 px per camera) and sensor noise (1.5-3
   grey levels) finish the frame.

All random choices derive from ``seed``, so the same call gives the same video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from calibration.board import BoardDefinition
from calibration.camera import Camera
from calibration.rig import Rig
from calibration.rigfile import save_rig
from rigcap.studio.board_motion import board_trajectory, board_faces_camera, board_corners_world, floor_frame_mask
from rigcap.studio.scene import camera_rays, room_background
from rigcap.studio.studio_rig import make_studio_rig, visible_in_image

#: The board the synthetic studio waves around: 8 x 6 squares of 9 cm (72 x 54 cm, an
#: A1 print), 35 inner corners, 24 markers of DICT_4X4_50.
STUDIO_BOARD = BoardDefinition(squares_x=8, squares_y=6, square_length=0.09, marker_length=0.07,
                               dictionary="DICT_4X4_50", legacy_pattern=False)

_MIP_PPS = (6, 8, 11, 16, 22, 32, 45, 64, 90, 128, 180)
_LIGHT_DIR = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])  # towards the main light


def true_board_corners_2d(rig: Rig, board: BoardDefinition, rvecs: np.ndarray, tvecs: np.ndarray,
                          margin_px: float = 0.0, transparent: bool = False) -> np.ndarray:
    """(C, F, N, 2) true pixel positions of the ChArUco corners (ids 0..N-1).

    NaN where the corner is outside the image (``margin_px`` from the border),
    outside the field of view, behind the camera, or the board faces away
    (unless ``transparent``: then its corners show from behind too).
    Pure geometry, no rendering: the reference for detection tests and
    calibration benchmarks.
    """
    world = board_corners_world(board, rvecs, tvecs)  # (F, N, 3)
    faces = board_faces_camera(rig.centers, rvecs, tvecs)  # (C, F)
    out = np.full((len(rig), world.shape[0], world.shape[1], 2), np.nan)
    for ci, cam in enumerate(rig.cameras):
        uv = cam.project(world)
        ok = visible_in_image(cam, world, margin_px) & (faces[ci][:, None] | transparent)
        out[ci][ok] = uv[ok]
    return out


class BoardRenderer:
    """Renders one board in every camera of a rig; per-camera state (rays, background,
    lens blur, noise level, light field) is built once."""

    def __init__(self, rig: Rig, board: BoardDefinition, seed: int = 0, blur: bool = True,
                 noise: bool = True, uneven_light: bool = True, background: bool = True,
                 transparent: bool = False):
        self.rig = rig
        self.board = board
        self.transparent = transparent  # seen from behind, the board shows its front mirrored
        self.seed = int(seed)
        self.blur = blur
        self.noise = noise
        self.uneven_light = uneven_light
        self.background = background
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xB1]))
        n = len(rig)
        self.blur_sigma = rng.uniform(0.5, 1.0, n)
        self.noise_sigma = rng.uniform(1.5, 3.0, n)
        self.exposure = rng.uniform(0.85, 1.1, n)
        self.white_balance = 1.0 + rng.normal(0, 0.03, (n, 3))
        self._light_params = [rng.uniform(0, 2 * np.pi, 8) for _ in range(n)]
        self._textures: dict[int, np.ndarray] = {}
        self._bg: list[np.ndarray | None] = [None] * n

    # ------------------------------------------------------------ helpers
    def _texture(self, pps: int) -> np.ndarray:
        """(H, W, 2) uint8: board grey level and coverage (255 on the paper)."""
        if pps not in self._textures:
            margin = max(1, pps // 2)
            img = self.board.render(pixels_per_square=pps, margin_px=margin)
            self._textures[pps] = np.ascontiguousarray(np.dstack([img, np.full_like(img, 255)]))
        return self._textures[pps]

    def _background(self, ci: int) -> np.ndarray:
        if self._bg[ci] is None:
            cam = self.rig.cameras[ci]
            if self.background:
                self._bg[ci] = room_background(cam, self.seed).astype(np.float32)
            else:
                w, h = cam.size
                self._bg[ci] = np.full((h, w, 3), 90.0, np.float32)
        return self._bg[ci]

    def _light_field(self, ci: int, frame_index: int, shape) -> np.ndarray:
        """Smooth multiplicative illumination (h, w, 1): a bright blob and a gradient."""
        h, w = shape
        p = self._light_params[ci]
        t = frame_index / 30.0
        gy, gx = np.mgrid[0:9, 0:16].astype(np.float32)
        gx /= 15.0
        gy /= 8.0
        bx = 0.5 + 0.35 * np.sin(p[0] + 0.2 * t)
        by = 0.5 + 0.35 * np.sin(p[1] + 0.15 * t)
        blob = np.exp(-((gx - bx) ** 2 + (gy - by) ** 2) / (2 * 0.25**2))
        grad = (gx - 0.5) * np.cos(p[2]) + (gy - 0.5) * np.sin(p[2])
        small = 0.85 + 0.25 * blob + 0.18 * grad
        return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)[..., None]

    # ------------------------------------------------------------- render
    def render(self, ci: int, rvec: np.ndarray, tvec: np.ndarray, frame_index: int = 0) -> np.ndarray:
        """One BGR uint8 frame of camera ``ci`` with the board at pose (rvec, tvec)."""
        cam: Camera = self.rig.cameras[ci]
        w, h = cam.size
        bg = self._background(ci)
        img = bg.copy()
        r_wb = Rotation.from_rotvec(np.asarray(rvec, float)).as_matrix()
        r_cb = cam.R @ r_wb
        t_cb = cam.R @ np.asarray(tvec, float) + cam.tvec
        cam_in_board = -r_cb.T @ t_cb
        if cam_in_board[2] < 0 or self.transparent:  # printed face towards the camera, or a clear board
            self._draw_board(cam, img, r_cb, t_cb, r_wb if cam_in_board[2] < 0 else -r_wb)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xF2, ci, int(frame_index)]))
        gain = self.exposure[ci] * self.white_balance[ci].astype(np.float32)
        if self.uneven_light:
            img *= self._light_field(ci, frame_index, (h, w))
        img *= gain
        if self.blur:
            sigma = self.blur_sigma[ci] * rng.uniform(0.9, 1.1)
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        if self.noise:
            noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(self.noise_sigma[ci])
            img += noise[..., None]
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)

    def _draw_board(self, cam: Camera, img: np.ndarray, r_cb, t_cb, r_wb) -> None:
        board = self.board
        bw, bh = board.size_m
        sq = board.square_length
        depth = float(t_cb[2] + r_cb[2, :2] @ np.array([bw / 2, bh / 2]))
        if depth <= 1e-3:
            depth = 1e-3
        screen_pps = cam.matrix[0, 0] * sq / depth
        pps = min(_MIP_PPS, key=lambda p: abs(np.log(p / (1.5 * screen_pps))))
        tex = self._texture(pps)
        margin = max(1, pps // 2)
        k = pps / sq
        m = np.column_stack([r_cb[:, 0], r_cb[:, 1], t_cb])  # board (x, y, 1) -> camera ray
        try:
            m_inv = np.linalg.inv(m)
        except np.linalg.LinAlgError:  # camera in the board plane: board seen edge-on
            return
        s = np.array([[k, 0, margin - 0.5], [0, k, margin - 0.5], [0, 0, 1.0]])
        hmap = s @ m_inv
        # region of interest: the paper's outline, sampled densely (edges bend under distortion)
        mg = margin / k
        ts = np.linspace(0, 1, 24)
        xs = np.concatenate([-mg + ts * (bw + 2 * mg), np.full(24, bw + mg), bw + mg - ts * (bw + 2 * mg), np.full(24, -mg)])
        ys = np.concatenate([np.full(24, -mg), -mg + ts * (bh + 2 * mg), np.full(24, bh + mg), bh + mg - ts * (bh + 2 * mg)])
        outline_cam = np.stack([xs, ys, np.zeros_like(xs)], -1) @ r_cb.T + t_cb
        w, h = cam.size
        if np.all(outline_cam[:, 2] > 1e-3):
            uv = cam.normalized_to_pixels(cam.distort_normalized(outline_cam[:, :2] / outline_cam[:, 2:]))
            # the outline may leave the field of view, where distortion is meaningless: fall back to
            # the whole image when any outline ray is outside the image's undistorted radius
            rays = camera_rays(cam)
            r_out = np.hypot(outline_cam[:, 0], outline_cam[:, 1]) / outline_cam[:, 2]
            if np.all(r_out < np.hypot(*rays[[0, 0, -1, -1], [0, -1, 0, -1]].T).max()):
                x0 = int(np.clip(np.floor(uv[:, 0].min()) - 3, 0, w))
                x1 = int(np.clip(np.ceil(uv[:, 0].max()) + 4, 0, w))
                y0 = int(np.clip(np.floor(uv[:, 1].min()) - 3, 0, h))
                y1 = int(np.clip(np.ceil(uv[:, 1].max()) + 4, 0, h))
            else:
                x0, x1, y0, y1 = 0, w, 0, h
            behind = False
        else:
            x0, x1, y0, y1 = 0, w, 0, h
            behind = True
        if x1 <= x0 or y1 <= y0:
            return
        rays = camera_rays(cam)[y0:y1, x0:x1]
        tex_xy = cv2.perspectiveTransform(np.ascontiguousarray(rays).reshape(-1, 1, 2), hmap).reshape(y1 - y0, x1 - x0, 2)
        if behind:  # rays that meet the plane behind the camera must not see the board
            wgt = rays[..., 0] * m_inv[2, 0] + rays[..., 1] * m_inv[2, 1] + m_inv[2, 2]
            tex_xy[wgt <= 0] = -10.0
        sample = cv2.remap(tex, tex_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0))
        alpha = sample[..., 1:2].astype(np.float32) * (1.0 / 255.0)
        # printed paper: black 8 %, white 85 % reflectance, lit by ambient + the room light
        normal_w = -r_wb[:, 2]
        lambert = 0.65 + 0.45 * max(0.0, float(normal_w @ _LIGHT_DIR))
        grey = (20.0 + sample[..., 0:1].astype(np.float32) * ((215.0 - 20.0) / 255.0)) * lambert
        roi = img[y0:y1, x0:x1]
        roi += alpha * (grey - roi)


def render_board_views(rig: Rig, board: BoardDefinition, rvecs: np.ndarray, tvecs: np.ndarray, seed: int = 0,
                       blur: bool = True, noise: bool = True, uneven_light: bool = True,
                       background: bool = True, transparent: bool = False) -> Iterator[list[np.ndarray]]:
    """Yield, per frame, a list of ``len(rig)`` BGR uint8 images (h, w, 3), one per camera."""
    renderer = BoardRenderer(rig, board, seed, blur, noise, uneven_light, background, transparent)
    rvecs = np.asarray(rvecs, float).reshape(-1, 3)
    tvecs = np.asarray(tvecs, float).reshape(-1, 3)
    for fi in range(rvecs.shape[0]):
        yield [renderer.render(ci, rvecs[fi], tvecs[fi], fi) for ci in range(len(rig))]


def write_board_recording(out_dir, rig: Rig | None = None, board: BoardDefinition | None = None,
                          n_frames: int = 120, fps: float = 30.0, seed: int = 0, n_cameras: int = 4,
                          hard: bool = False, video_format: str = "mp4", size=(1280, 720),
                          rvecs: np.ndarray | None = None, tvecs: np.ndarray | None = None,
                          blur: bool = True, noise: bool = True, uneven_light: bool = True,
                          progress=None) -> dict:
    """Write a synthetic board recording and its ground truth into ``out_dir``.

    Files: ``cam_i.mp4`` per camera (``video_format="mp4"``, codec mp4v) or
    ``cam_i/000000.png ...`` folders (``"png"``, lossless); ``rig_true.toml``;
    ``board.toml``; ``board_poses_true.npz`` (``rvecs``, ``tvecs`` board->world,
    ``floor`` mask, ``corners_2d`` the true (C, F, N, 2) corner pixels, ``fps``).
    ``hard=True`` uses the board motion where no frame shows the board to every
    camera (default rig then has 8 cameras unless ``n_cameras`` says otherwise).
    Returns a dict of paths: ``videos`` (list, camera order), ``rig``,
    ``board``, ``poses``, ``out_dir``.  ``progress`` is an optional callable
    ``progress(frames_done, n_frames)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if video_format not in ("mp4", "png"):
        raise ValueError(f"video_format must be 'mp4' or 'png', got {video_format!r}")
    rig = rig or make_studio_rig(n_cameras, size=size, seed=seed)
    board = board or STUDIO_BOARD
    if rvecs is None or tvecs is None:
        rvecs, tvecs = board_trajectory(n_frames, seed, board, mode="hard" if hard else "normal")
    rvecs = np.asarray(rvecs, float).reshape(-1, 3)
    tvecs = np.asarray(tvecs, float).reshape(-1, 3)
    n_frames = rvecs.shape[0]
    rig_path = save_rig(rig, out_dir / "rig_true.toml")
    board_path = board.save(out_dir / "board.toml")
    corners = true_board_corners_2d(rig, board, rvecs, tvecs)
    poses_path = out_dir / "board_poses_true.npz"
    np.savez_compressed(poses_path, rvecs=rvecs, tvecs=tvecs, floor=floor_frame_mask(rvecs, tvecs),
                        corners_2d=corners, camera_names=np.array(rig.names), fps=np.float64(fps))
    videos: list[Path] = []
    writers = []
    for cam in rig.cameras:
        if video_format == "mp4":
            path = out_dir / f"{cam.name}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), tuple(cam.size))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path} with codec mp4v")
            writers.append(writer)
        else:
            path = out_dir / cam.name
            path.mkdir(exist_ok=True)
            writers.append(None)
        videos.append(path)
    try:
        for fi, frames in enumerate(render_board_views(rig, board, rvecs, tvecs, seed, blur, noise, uneven_light)):
            for ci, img in enumerate(frames):
                if writers[ci] is not None:
                    writers[ci].write(img)
                else:
                    cv2.imwrite(str(videos[ci] / f"{fi:06d}.png"), img)
            if progress is not None:
                progress(fi + 1, n_frames)
    finally:
        for writer in writers:
            if writer is not None:
                writer.release()
    if video_format == "mp4":
        for path in videos:
            cap = cv2.VideoCapture(str(path))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            ok, _ = cap.read()
            cap.release()
            if not ok or n != n_frames:
                raise RuntimeError(f"{path}: wrote {n_frames} frames but reading back gives {n} (codec problem)")
    return {"out_dir": out_dir, "videos": videos, "rig": rig_path, "board": board_path, "poses": poses_path}
