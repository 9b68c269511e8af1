"""Frames from one camera's input: a video file or a folder of images.

Every problem with an input is reported as :class:`~rigcap.errors.InputFileError`
naming the file: a path that does not exist, a file OpenCV cannot open (corrupt,
truncated before its index, unsupported), a video whose decoding stops well
before the frame count its header declares (truncated or damaged in the
middle), an image in a folder that cannot be read.

The camera's name is the input's stem (``cam_0.mp4`` -> ``cam_0``, folder
``cam_1/`` -> ``cam_1``).  A folder holding one video and no images (a
camera folder of a rigcap recording, ``cam_2/segment-000.avi``) is that
video, named after the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from rigcap.errors import InputFileError

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def natural_key(text: str) -> list:
    """Sort key that puts ``img_2`` before ``img_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


def _truncation_tolerance(declared: int) -> int:
    # Container frame counts are sometimes off by one; more than that (or 1 %) is damage.
    return max(1, declared // 100)


@dataclass(frozen=True)
class FrameSource:
    """One camera's frames; open with :func:`open_source`."""

    path: Path
    name: str
    size: tuple[int, int]  # (width, height) in pixels
    n_frames: int  # declared (videos) or counted (image folders)
    images: tuple[Path, ...] = ()  # image folders only

    @property
    def is_video(self) -> bool:
        return not self.images

    def frames(self, gray: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, image)``; grayscale uint8 when ``gray``.

        Raises :class:`InputFileError` naming the file when decoding stops
        early or an image cannot be read.
        """
        if self.images:
            for i, img_path in enumerate(self.images):
                flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
                image = cv2.imread(str(img_path), flag)
                if image is None:
                    raise InputFileError(img_path, "cannot be read as an image (corrupt or unsupported format)")
                if (image.shape[1], image.shape[0]) != self.size:
                    raise InputFileError(
                        img_path,
                        f"image is {image.shape[1]}x{image.shape[0]} but the first image of {self.path} "
                        f"is {self.size[0]}x{self.size[1]}; one folder must hold one camera's frames",
                    )
                yield i, image
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if gray and frame.ndim == 3:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                yield i, frame
                i += 1
        finally:
            cap.release()
        if i == 0:
            raise InputFileError(self.path, "no frame could be decoded (the video is corrupt or truncated)")
        if self.n_frames > 0 and self.n_frames - i > _truncation_tolerance(self.n_frames):
            raise InputFileError(
                self.path,
                f"video is truncated or damaged: decoding stopped after frame {i - 1} but its header "
                f"declares {self.n_frames} frames. Re-copy or re-record the file.",
            )


def open_source(path: str | Path) -> FrameSource:
    """Check one input (video file or image folder) and describe it, without decoding it all."""
    path = Path(path)
    if path.is_dir():
        images = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name))
        videos = sorted((p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES), key=lambda p: natural_key(p.name))
        if not images and len(videos) == 1:
            # a camera folder of a rigcap recording (segment-000.avi): the camera is the folder
            return replace(open_source(videos[0]), name=path.name)
        if not images and videos:
            raise InputFileError(
                path, f"holds {len(videos)} videos ({', '.join(v.name for v in videos)}; a camera that restarted "
                "records one segment per start): give one video file per camera"
            )
        if not images:
            raise InputFileError(path, f"folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) and no video")
        first = cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE)
        if first is None:
            raise InputFileError(images[0], "cannot be read as an image (corrupt or unsupported format)")
        return FrameSource(path, path.name, (first.shape[1], first.shape[0]), len(images), tuple(images))
    if not path.exists():
        raise InputFileError(path, "input not found (expected a video file or a folder of images)")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputFileError(path, "is a single image; give a folder of images (one folder per camera) or a video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputFileError(path, "cannot be opened as a video (corrupt, truncated or an unsupported format)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputFileError(path, "no frame could be decoded (the video is corrupt or truncated)")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return FrameSource(path, path.stem, (frame.shape[1], frame.shape[0]), max(declared, 0))
