"""The capture configuration (``configs/studio.toml``): cameras, detector, endpoints, rig.

::

    rig = "rig.toml"                 # optional, relative to this file

    [detector]
    name = "mediapipe"               # see capture.pose.available_detectors()
    # other keys are passed to the detector (e.g. min_confidence = 0.5)

    [endpoints]
    pub = "tcp://127.0.0.1:5555"     # publishers connect here (the backbone binds)
    sub = "tcp://127.0.0.1:5556"     # subscribers connect here
    clock = "tcp://127.0.0.1:5557"   # clock query server
    # readers = "tcp://0.0.0.0:5558" # fusion machine: where viewer hosts read kp3d/angles/stats (the readers relay)

    [supervisor]
    max_restarts = 3                 # a camera process that dies more often is left out
    restart_delay_s = 1.0

    [fusion]                         # optional; keys and defaults: triangulate.fusion_options.FusionOptions
    alive_window_s = 1.0             # e.g.: stop waiting for a camera silent this long

    [security]                       # optional; CurveZMQ key files from `rigcap keys`, relative to this file
    secret_key = "keys/cam-a.key_secret"   # this host's own key pair
    server_key = "keys/fusion.key"         # camera host: the fusion machine's public key
    allowed_keys = "keys/allowed/"         # fusion machine: folder of the camera hosts' public keys
    readers = "keys/readers/"              # fusion machine: folder of the public keys of hosts that may read

    [[cameras]]
    name = "cam_0"
    source = "usb"                   # usb | video | synthetic
    device = 0                       # usb: index or path such as "/dev/video2"
    size = [1280, 720]               # usb, synthetic: requested width, height
    fps = 30                         # usb, synthetic: requested frame rate
    mjpg = true                      # usb: request MJPG
    # video:     path = "videos/cam01.mp4", pace = true, loop = false, fps = (file's)
    # synthetic: camera_index = 0, n_cameras = 4, seed = 0, duration_s = 10, persons = 1 (2-6: the crowd studio),
    #            render = false (true: rendered images for a real model / the video file),
    #            keypoints = true (the studio's noisy detections, for detector "synthetic")
    # any camera: detector = "..." overrides [detector] name for this camera

:func:`load_config` checks everything it can before a process starts and
raises :class:`~rigcap.errors.InputFileError` with one line naming the file,
the camera and the problem (a video file or USB device that is not there, an
unknown key, a repeated name).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rigcap.wire import DEFAULT_CLOCK_ENDPOINT, DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT
from rigcap.errors import InputFileError, read_toml
from triangulate.fusion_options import FusionOptions

SOURCE_TYPES = ("usb", "video", "synthetic")


@dataclass
class CameraConfig:
    """One camera: which source, and its settings.  Picklable (sent to its process)."""

    name: str
    source: str = "usb"
    # usb
    device: int | str = 0
    size: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    mjpg: bool = True
    # video
    path: str | None = None
    pace: bool = True
    loop: bool = False
    fps_override: float | None = None
    # synthetic
    camera_index: int = 0
    n_cameras: int = 4
    duration_s: float = 10.0
    seed: int = 0
    persons: int = 1  # people in the studio (2-6: rigcap.studio.crowd.CrowdStudio; its detections in detection order)
    render: bool = False
    keypoints: bool = True
    # per-camera detector override
    detector: str | None = None

    def image_size(self) -> tuple[int, int] | None:
        """The frame size this camera will deliver, when known before starting it: a video file's own
        size, else the size the config asks for (a USB camera may still deliver another)."""
        if self.source == "video" and self.path:
            import cv2

            cap = cv2.VideoCapture(str(self.path))
            try:
                if cap.isOpened():
                    return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            finally:
                cap.release()
            return None
        return tuple(self.size)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}


@dataclass
class SecurityConfig:
    """The ``[security]`` table: key file paths (resolved, checked to exist); the files are read
    by :meth:`client_keys` / :meth:`server_keys`, which the commands call and pass down."""

    secret_key: str | None = None
    server_key: str | None = None
    allowed_keys: str | None = None
    readers: str | None = None  # folder: the hosts allowed to read this machine's readers relay

    @property
    def configured(self) -> bool:
        return self.secret_key is not None

    def client_keys(self):
        """A camera host's keys (its backbone is a CURVE client), or None without [security]."""
        if self.secret_key is None or self.server_key is None:
            return None
        from rigcap.wire.security import ClientKeys

        return ClientKeys(self.secret_key, self.server_key)

    def server_keys(self):
        """The fusion machine's keys (CURVE server with the allow-lists), or None without any allow-list."""
        if self.secret_key is None or (self.allowed_keys is None and self.readers is None):
            return None
        from rigcap.wire.security import ServerKeys

        return ServerKeys(self.secret_key, self.allowed_keys, self.readers)


_SECURITY_KEYS = {f.name for f in fields(SecurityConfig)}


def _security(raw, path, base_dir: Path) -> SecurityConfig:
    if not isinstance(raw, dict):
        raise InputFileError(path, "[security] must be a table")
    unknown = set(raw) - _SECURITY_KEYS
    if unknown:
        raise InputFileError(path, f"[security]: unknown key {', '.join(sorted(map(repr, unknown)))} "
                                   f"(known: {', '.join(sorted(_SECURITY_KEYS))})")
    if raw and "secret_key" not in raw:
        raise InputFileError(path, "[security]: secret_key = \"...\" (this host's .key_secret file) is missing")
    out = {}
    for key, value in raw.items():
        p = Path(str(value))
        p = p if p.is_absolute() else base_dir / p
        folder = key in ("allowed_keys", "readers")
        if folder and not p.is_dir():
            raise InputFileError(path, f"[security] {key}: folder not found: {p}")
        if not folder and not p.is_file():
            raise InputFileError(path, f"[security] {key}: key file not found: {p}")
        out[key] = str(p)
    return SecurityConfig(**out)


@dataclass
class CaptureConfig:
    cameras: list[CameraConfig]
    detector: str = "mediapipe"
    detector_options: dict = field(default_factory=dict)
    pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    sub_endpoint: str = DEFAULT_SUB_ENDPOINT
    clock_endpoint: str = DEFAULT_CLOCK_ENDPOINT
    readers_endpoint: str | None = None  # the readers relay (None: no relay)
    rig_file: str | None = None
    max_restarts: int = 3
    restart_delay_s: float = 1.0
    path: str | None = None
    raw: dict = field(default_factory=dict)
    fusion: dict = field(default_factory=dict)  # the [fusion] table, as written
    security: SecurityConfig = field(default_factory=SecurityConfig)  # the [security] table's key files

    @property
    def fps(self) -> float:
        """The fastest camera's frame rate: what live grouping is timed by."""
        return max(c.fps_override or c.fps for c in self.cameras)

    def fusion_options(self, **given) -> FusionOptions:
        """Live fusion settings: the ``[fusion]`` table, then ``given`` (command-line flags) over it."""
        return FusionOptions.from_table(self.fusion, self.path or "<config>", **{"fps": self.fps, **given})

    def detector_for(self, override: str | None = None) -> tuple[str, dict]:
        """The detector a run uses (``--detector`` or the config's) and its options.

        The ``[detector]`` options belong to the config's detector only; an
        override gets them when it names that same detector.  Checked here, so
        an unknown name or option is one line, not a crash in every camera process.
        """
        from capture.pose import check_detector

        name = override or self.detector
        options = dict(self.detector_options) if name == self.detector else {}
        check_detector(name, options)
        return name, options

    def reader_keys(self, server_keys, insecure: bool):
        """The readers relay's keys: ``server_keys`` (this machine's one :class:`ServerKeys`, from
        :meth:`SecurityConfig.server_keys`) as the relay applies them, or None without ``[security]
        readers``.  A relay on a non-loopback ``[endpoints] readers`` without them is refused unless
        ``insecure`` (:func:`rigcap.wire.security.require_keys`)."""
        from rigcap.wire.security import require_keys

        keys = server_keys.readers() if server_keys is not None and self.security.readers else None
        if self.readers_endpoint:
            require_keys(self.readers_endpoint, keys, insecure)
        return keys

    def camera(self, name: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)


_CAMERA_KEYS = {f.name for f in fields(CameraConfig)} - {"fps_override"}
_TOP_KEYS = {"rig", "detector", "endpoints", "supervisor", "cameras", "fusion", "security"}
_ENDPOINT_KEYS = {"pub", "sub", "clock", "readers"}


def load_config(path: str | Path, check_devices: bool = True) -> CaptureConfig:
    """Read and validate a capture config (see module docstring)."""
    path = Path(path)
    data = read_toml(path, "capture config")
    return config_from_dict(data, path, base_dir=path.parent, check_devices=check_devices)


def config_from_dict(data: dict, path="<config>", base_dir: Path | None = None, check_devices: bool = True) -> CaptureConfig:
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise InputFileError(path, f"unknown key {', '.join(sorted(map(repr, unknown)))} (known: {', '.join(sorted(_TOP_KEYS))})")
    cams_raw = data.get("cameras")
    if not isinstance(cams_raw, list) or not cams_raw:
        raise InputFileError(path, "no cameras: add at least one [[cameras]] table")
    cameras = [_camera(c, i, path, base_dir, check_devices) for i, c in enumerate(cams_raw)]
    names = [c.name for c in cameras]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(path, f"camera names must be unique; repeated: {', '.join(dupes)}")
    det = dict(data.get("detector", {}))
    detector = str(det.pop("name", "mediapipe"))
    from capture.pose import DetectorError, available_detectors, check_detector

    for name in [detector] + [c.detector for c in cameras if c.detector]:
        if name not in available_detectors():
            raise InputFileError(path, f"unknown detector {name!r} (known: {', '.join(available_detectors())})")
    try:
        check_detector(detector, det)
    except DetectorError as exc:
        raise InputFileError(path, f"[detector]: {exc}") from None
    ends = data.get("endpoints", {})
    if not isinstance(ends, dict) or set(ends) - _ENDPOINT_KEYS:
        raise InputFileError(path, f"[endpoints]: a table of {', '.join(sorted(_ENDPOINT_KEYS))} = \"tcp://HOST:PORT\"")
    security = _security(data.get("security", {}), path, base_dir)
    if security.readers is not None and "readers" not in ends:
        raise InputFileError(path, "[security] readers needs [endpoints] readers = \"tcp://HOST:PORT\" (where they read)")
    sup = data.get("supervisor", {})
    fusion = data.get("fusion", {})
    if not isinstance(fusion, dict):
        raise InputFileError(path, "[fusion] must be a table")
    FusionOptions.from_table(dict(fusion), path, fps=max(c.fps_override or c.fps for c in cameras))  # checked once, here
    rig = data.get("rig")
    rig_file = None
    if rig:
        rig_path = Path(rig) if Path(rig).is_absolute() else base_dir / rig
        if not rig_path.is_file():
            raise InputFileError(path, f"rig file not found: {rig_path}")
        rig_file = str(rig_path)
    return CaptureConfig(
        cameras=cameras, detector=detector, detector_options=det,
        pub_endpoint=str(ends.get("pub", DEFAULT_PUB_ENDPOINT)),
        sub_endpoint=str(ends.get("sub", DEFAULT_SUB_ENDPOINT)),
        clock_endpoint=str(ends.get("clock", DEFAULT_CLOCK_ENDPOINT)),
        readers_endpoint=str(ends["readers"]) if "readers" in ends else None,
        rig_file=rig_file, max_restarts=int(sup.get("max_restarts", 3)),
        restart_delay_s=float(sup.get("restart_delay_s", 1.0)), path=str(path), raw=data, fusion=dict(fusion),
        security=security,
    )



def _camera(raw, i: int, path, base_dir: Path, check_devices: bool) -> CameraConfig:
    if not isinstance(raw, dict):
        raise InputFileError(path, f"cameras[{i}] must be a table")
    name = str(raw.get("name", f"cam_{i}"))
    where = f"camera {name!r}"
    if not name or any(ch.isspace() for ch in name) or not name.isascii():
        raise InputFileError(path, f"{where}: a camera name must be ASCII without spaces (it becomes the topic kp2d.<name>)")
    unknown = set(raw) - _CAMERA_KEYS
    if unknown:
        raise InputFileError(path, f"{where}: unknown key {', '.join(sorted(map(repr, unknown)))}")
    source = str(raw.get("source", "usb"))
    if source not in SOURCE_TYPES:
        raise InputFileError(path, f"{where}: unknown source {source!r} (one of {', '.join(SOURCE_TYPES)})")
    kw = {k: v for k, v in raw.items() if k not in ("name", "source", "fps", "size")}
    try:
        cam = CameraConfig(name=name, source=source, **kw)
        if "size" in raw:
            w, h = (int(v) for v in raw["size"])
            cam.size = (w, h)
        if "fps" in raw:
            if source == "video":
                cam.fps_override = float(raw["fps"])
            else:
                cam.fps = float(raw["fps"])
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, f"{where}: {exc}") from None
    if cam.fps <= 0 or (cam.fps_override is not None and cam.fps_override <= 0):
        raise InputFileError(path, f"{where}: fps must be positive")
    if source == "video":
        if not cam.path:
            raise InputFileError(path, f"{where}: a video source needs path = \"...\"")
        video = Path(cam.path) if Path(cam.path).is_absolute() else base_dir / cam.path
        if not video.is_file():
            raise InputFileError(path, f"{where}: video file not found: {video}")
        cam.path = str(video)
    elif source == "usb" and check_devices:
        problem = usb_device_problem(cam.device)
        if problem:
            raise InputFileError(path, f"{where}: {problem}")
    elif source == "synthetic":
        if not 0 <= cam.camera_index < cam.n_cameras:
            raise InputFileError(path, f"{where}: camera_index {cam.camera_index} outside 0..{cam.n_cameras - 1}")
        from rigcap.studio.crowd import MAX_PERSONS

        if isinstance(cam.persons, bool) or not isinstance(cam.persons, int) or not 1 <= cam.persons <= MAX_PERSONS:
            raise InputFileError(path, f"{where}: persons must be a whole number from 1 to {MAX_PERSONS}, got {cam.persons!r}")
    return cam


def usb_device_problem(device) -> str | None:
    """Why a USB camera is certainly absent (Linux: no /dev/video node), else None."""
    if isinstance(device, str) and not device.isdigit():
        return None if Path(device).exists() else f"USB camera device not found: {device}"
    if sys.platform.startswith("linux"):
        node = Path(f"/dev/video{int(device)}")
        if not node.exists():
            present = sorted(p.name for p in Path("/dev").glob("video*"))
            return f"USB camera {int(device)} not found ({node} does not exist; present: {', '.join(present) or 'none'})"
    return None
