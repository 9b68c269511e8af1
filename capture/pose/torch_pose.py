"""A top-down 2D pose model you supply as a TorchScript or ``torch.export`` file, on CPU or GPU.

Why it exists: the built-in MediaPipe model is what ships inside a wheel, but
studios with a GPU run heavier top-down models (RTMPose, ViTPose, HRNet).
Exported with ``torch.export.save(torch.export.export(model, (example,)), "pose.pt2")``
(or as TorchScript, ``torch.jit.trace(model, example).save("pose.pt")``)
any of them plugs in here with no code, and torch runs it on ``cuda`` when
there is one.  Nothing is downloaded: the file is yours.

What the file must be
    input ``(1, 3, H, W)`` float32 RGB, normalised ``(pixel - mean) / std``
    (ImageNet statistics by default, as MMPose trains them);
    output either heatmaps ``(1, J, h, w)`` (HRNet, ViTPose: ``h = H / 4``)
    or SimCC ``(x (1, J, W * k), y (1, J, H * k))`` (RTMPose, ``k`` = the
    split ratio, 2 by default).

Person boxes (``boxes``): ``"detector"`` (default) takes them from the same
:class:`capture.pose.blazepose_multi.PersonProposer` the ``mediapipe_multi``
detector crops its landmark model with -- BlazePose's person detector (weights
in the mediapipe wheel), the previous frame's people as tracks (their
confident joints grown by 25 %), boxes given to :meth:`TorchScriptPoseDetector.propose`
(e.g. 3D tracks projected into this camera), tiles for small people -- so the
model runs once per person and several people come out.  ``"whole_image"``:
one person, the previous frame's joints grown by 25 % or else the whole image
(for a subject BlazePose's person detector does not know, or a model of your
own that finds its subject anywhere).  Every box is upright and keeps the
model's aspect ratio, so nothing is stretched.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from capture.pose import Detector, DetectorError
from triangulate.skeletons import get_skeleton

BOX_SOURCES = ("detector", "whole_image")

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def box_to_affine(box: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """2×3 affine taking image pixels to model-input pixels for ``box`` = (x0, y0, x1, y1).

    The box is widened or heightened about its centre to the input's aspect
    ratio, so the person keeps their proportions.
    """
    w_in, h_in = input_size
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw, bh = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    aspect = w_in / h_in
    if bw / bh > aspect:
        bh = bw / aspect
    else:
        bw = bh * aspect
    scale = w_in / bw  # same in y by construction
    # Continuous coordinates (pixel i covers [i - 0.5, i + 0.5]): the box's left
    # edge x0 goes to the input's left edge -0.5, its right edge to w_in - 0.5.
    x0, y0 = cx - bw / 2, cy - bh / 2
    return np.array([[scale, 0.0, -scale * x0 - 0.5],
                     [0.0, scale, -scale * y0 - 0.5]], np.float64)


def decode_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    """(J, h, w) heatmaps → (J, 3) = x, y in heatmap pixels (sub-pixel), peak value.

    Sub-pixel by a parabola through the peak and its two neighbours along each
    axis (exact for a sampled Gaussian's log; within ~0.1 px for its values).
    """
    j, h, w = heatmaps.shape
    flat = heatmaps.reshape(j, -1)
    idx = flat.argmax(axis=1)
    py, px = np.divmod(idx, w)
    rows = np.arange(j)
    peak = flat[rows, idx]

    def offset(minus, plus, centre):
        denom = minus - 2 * centre + plus
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(denom < 0, 0.5 * (minus - plus) / denom, 0.0)
        return np.clip(d, -0.5, 0.5)

    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    xm = heatmaps[rows, py, np.clip(px - 1, 0, w - 1)]
    xp = heatmaps[rows, py, np.clip(px + 1, 0, w - 1)]
    ym = heatmaps[rows, np.clip(py - 1, 0, h - 1), px]
    yp = heatmaps[rows, np.clip(py + 1, 0, h - 1), px]
    dx = np.where(inner_x, offset(xm, xp, peak), 0.0)
    dy = np.where(inner_y, offset(ym, yp, peak), 0.0)
    return np.stack([px + dx, py + dy, peak], axis=1).astype(np.float64)


def decode_simcc(x_logits: np.ndarray, y_logits: np.ndarray, split_ratio: float) -> np.ndarray:
    """(J, Wk), (J, Hk) SimCC vectors → (J, 3) = x, y in input pixels, confidence."""
    xi, yi = x_logits.argmax(axis=1), y_logits.argmax(axis=1)
    rows = np.arange(x_logits.shape[0])
    conf = np.minimum(x_logits[rows, xi], y_logits[rows, yi])
    return np.stack([xi / split_ratio, yi / split_ratio, conf], axis=1).astype(np.float64)


def load_model(path: Path, device: str):
    """A ``torch.export`` program (``.pt2``) or a TorchScript file, ready on ``device``.

    torch 2.13 deprecates TorchScript in favour of ``torch.export``; both are
    read, since most published pose exports are still TorchScript.
    """
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if path.suffix == ".pt2":
                return torch.export.load(str(path)).module().to(device)
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript file"
        raise DetectorError(f"{path}: not a {kind} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def region_box(region, aspect: float) -> np.ndarray:
    """Upright box (x0, y0, x1, y1) for a top-down model around a proposer's region: centred on it,
    as tall as its side (BlazePose's regions are 1.3-1.45 x the person's height), ``aspect`` = w / h."""
    half_h = region.size / 2
    half_w = half_h * aspect
    return np.array([region.cx - half_w, region.cy - half_h, region.cx + half_w, region.cy + half_h])


def joints_box(joints: np.ndarray, good: np.ndarray, pad: float = 0.125) -> np.ndarray:
    """The box around the confident joints, grown by ``pad`` of its size on each side (the next frame's box)."""
    lo, hi = joints[good, :2].min(axis=0), joints[good, :2].max(axis=0)
    grow = pad * (hi - lo)
    return np.r_[lo - grow, hi + grow].astype(np.float64)


class TorchScriptPoseDetector(Detector):
    """Run a user-supplied TorchScript top-down pose model (see the module docstring).

    ``boxes``: ``"detector"`` (the shared person proposer; ``max_persons``,
    ``min_detection_confidence``, ``detect_every``, ``tile_every``, ``tiles``,
    ``duplicate_iou`` as for ``mediapipe_multi``) or ``"whole_image"`` (one
    person).  A person is reported where at least ``MIN_JOINTS`` joints reach
    ``min_confidence``.
    """

    name = "torchscript"
    MIN_JOINTS = 3

    def __init__(self, model: str, skeleton: str = "coco17", input_size=(192, 256), device: str = "auto",
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, split_ratio: float = 2.0, min_confidence: float = 0.3,
                 track: bool = True, boxes: str = "detector", max_persons: int = 8,
                 min_detection_confidence: float = 0.5, detect_every: int = 10, tile_every: int = 30, tiles: int = 3,
                 duplicate_iou: float = 0.5):
        try:
            import torch
        except ImportError:
            raise DetectorError("detector 'torchscript' needs torch: pip install 'rigcap[torch]'") from None
        if boxes not in BOX_SOURCES:
            raise DetectorError(f"detector 'torchscript': boxes must be one of {', '.join(BOX_SOURCES)}, got {boxes!r}")
        if max_persons < 1:
            raise DetectorError("detector 'torchscript': max_persons must be >= 1")
        path = Path(model)
        if not path.is_file():
            raise DetectorError(f"{path}: TorchScript pose model not found")
        self.proposer = None
        if boxes == "detector":
            from capture.pose.blazepose_multi import PersonProposer

            self.proposer = PersonProposer(min_detection_confidence, detect_every, tile_every, tiles,
                                           owner="torchscript")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_model(path, device)
        self.torch, self.device, self.path = torch, device, path
        self.skeleton = get_skeleton(skeleton)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.split_ratio = float(split_ratio)
        self.min_confidence = float(min_confidence)
        self.track = track
        self.max_persons = int(max_persons) if boxes == "detector" else 1
        self.duplicate_iou = float(duplicate_iou)
        self._box: np.ndarray | None = None  # "whole_image": the tracked box

    @property
    def aspect(self) -> float:
        return self.input_size[0] / self.input_size[1]

    def propose(self, people, skeleton=None) -> None:
        """Crop these people on the next frame (``boxes="detector"`` only): (N, 4) boxes x0, y0, x1, y1,
        or (N, J, 2) joints with their ``skeleton`` (:meth:`PersonProposer.propose`)."""
        if self.proposer is not None:
            self.proposer.propose(people, skeleton)

    def reset(self) -> None:
        """Forget the tracks (a new, unrelated image sequence)."""
        self._box = None
        if self.proposer is not None:
            self.proposer.reset()

    def _person_boxes(self, image: np.ndarray) -> list[np.ndarray]:
        if self.proposer is not None:
            return [region_box(r, self.aspect) for r in self.proposer.regions(image)]
        h, w = image.shape[:2]
        return [self._box if self._box is not None else np.array([-0.5, -0.5, w - 0.5, h - 0.5])]

    def _run(self, batch: np.ndarray):
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(batch).to(self.device))
        if isinstance(out, (tuple, list)):
            return [o.detach().float().cpu().numpy() for o in out]
        return out.detach().float().cpu().numpy()

    def _decode(self, out) -> np.ndarray:
        """Model output → (J, 3) in model-input pixels."""
        j = self.skeleton.n_joints
        w_in, h_in = self.input_size
        if isinstance(out, list) and len(out) == 2 and out[0].ndim == 3:
            x, y = out[0][0], out[1][0]
            if x.shape[0] != j or y.shape[0] != j:
                raise DetectorError(f"{self.path}: SimCC output has {x.shape[0]} joints, skeleton "
                                    f"{self.skeleton.name} has {j}")
            return decode_simcc(x, y, self.split_ratio)
        if isinstance(out, np.ndarray) and out.ndim == 4 and out.shape[:2] == (1, j):
            hm = out[0]
            kp = decode_heatmaps(hm)
            # heatmap pixel centres → input pixel centres (stride in each axis)
            sx, sy = w_in / hm.shape[2], h_in / hm.shape[1]
            kp[:, 0] = (kp[:, 0] + 0.5) * sx - 0.5
            kp[:, 1] = (kp[:, 1] + 0.5) * sy - 0.5
            return kp
        shapes = [o.shape for o in out] if isinstance(out, list) else getattr(out, "shape", type(out))
        raise DetectorError(f"{self.path}: expected heatmaps (1, {j}, h, w) or SimCC (x, y) output, got {shapes}")

    def pose_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(J, 3) float32 joints (x, y image pixels, confidence) the model finds in ``box``."""
        affine = box_to_affine(box, self.input_size)
        crop = cv2.warpAffine(image, affine, self.input_size, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        rgb = crop[:, :, ::-1].astype(np.float32)
        batch = ((rgb - self.mean) / self.std).transpose(2, 0, 1)[None].copy()
        kp = self._decode(self._run(batch))
        back = cv2.invertAffineTransform(affine)
        xy = kp[:, :2] @ back[:, :2].T + back[:, 2]
        return np.concatenate([xy, np.clip(kp[:, 2:3], 0, 1)], axis=1).astype(np.float32)

    def detect(self, image: np.ndarray) -> np.ndarray:
        from capture.pose.blazepose_multi import Region, unique_people

        people, scores, nexts = [], [], []
        for box in self._person_boxes(image):
            joints = self.pose_in_box(image, box)
            good = joints[:, 2] >= self.min_confidence
            if good.sum() < self.MIN_JOINTS:
                continue
            people.append(joints)
            scores.append(float(joints[good, 2].mean()) * good.mean())
            nexts.append(joints_box(joints, good))
        keep = unique_people(people, scores, self.duplicate_iou, self.max_persons)
        tracked = [nexts[i] for i in keep] if self.track else []
        if self.proposer is not None:
            # the next frame's crops: each person's joint box, as a region the proposer de-duplicates
            self.proposer.follow([Region((b[0] + b[2]) / 2, (b[1] + b[3]) / 2,
                                         max(b[3] - b[1], (b[2] - b[0]) / self.aspect)) for b in tracked])
        else:
            self._box = tracked[0] if tracked else None
        if not keep:
            return self.empty()
        return np.stack([people[i] for i in keep])
