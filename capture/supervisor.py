"""Start one OS process per camera, watch them, restart the ones that die.

::

    sup = Supervisor(cameras, record_dir="sessions/take1")   # list of CameraConfig
    sup.start()              # backbone + one process per camera ('spawn')
    sup.status()             # [CameraStatus(name, state, pid, restarts, exitcode, stats, message)]
    sup.stop()               # stop event -> clean close of every recording -> session finalized

``Supervisor.from_config(load_config(path))`` builds one from a capture config.
A camera process that exits with a non-zero code (crash, SIGKILL, unplugged
camera) is reported and restarted after ``restart_delay_s``; after
``max_restarts`` restarts it is left out (state ``failed``) while the other
cameras go on.  A video source that reaches its end is ``finished``, not
restarted.  The supervisor owns the ZeroMQ backbone unless
``own_backbone=False`` (someone else runs it at the same endpoints).

Every camera gets the same ``epoch_ns`` (wall clock, slightly in the future so
all processes are up), which makes their frame indices agree instant by
instant (see :mod:`capture.sources`).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from capture.config import CameraConfig, CaptureConfig
from capture.node import EXIT_OK, NodeOptions, camera_process_main
from rigcap.wire import DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT, Backbone, EndpointError


@dataclass
class CameraStatus:
    name: str
    state: str  # starting | running | restarting | failed | finished | stopped
    pid: int | None = None
    restarts: int = 0
    exitcode: int | None = None
    stats: dict = field(default_factory=dict)  # latest stats.<camera> snapshot
    message: str | None = None  # last error the process reported
    source: dict = field(default_factory=dict)  # what the source actually delivers


class _Slot:
    def __init__(self, camera: CameraConfig):
        self.camera = camera
        self.process: mp.process.BaseProcess | None = None
        self.events = None  # read end of the process's event pipe
        self.status = CameraStatus(camera.name, "starting")
        self.restart_at: float | None = None


class Supervisor:
    def __init__(self, cameras: list[CameraConfig], pub_endpoint: str = DEFAULT_PUB_ENDPOINT,
                 sub_endpoint: str = DEFAULT_SUB_ENDPOINT, record_dir: str | Path | None = None,
                 detector: str = "mediapipe", detector_options: dict | None = None, max_restarts: int = 3,
                 restart_delay_s: float = 1.0, own_backbone: bool = True, record_video: bool = True,
                 start_delay_s: float = 2.0, session_info: dict | None = None, on_event=None,
                 clock_endpoint: str | None = None, keys=None, readers_endpoint: str | None = None,
                 reader_keys=None):
        if not cameras:
            raise ValueError("a supervisor needs at least one camera")
        self.cameras = list(cameras)
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.max_restarts = max_restarts
        self.restart_delay_s = restart_delay_s
        self.own_backbone = own_backbone
        self.start_delay_s = start_delay_s
        self.session_info = session_info or {}
        self.on_event = on_event  # called with each event dict from the camera processes (watch thread)
        self.options = NodeOptions(pub_endpoint=pub_endpoint, detector=detector,
                                   detector_options=dict(detector_options or {}),
                                   record_dir=str(self.record_dir) if self.record_dir else None,
                                   record_video=record_video)
        self._ctx = mp.get_context("spawn")
        # Lock-free on purpose: a camera killed while holding a lock would hang the others.
        self._stop_flag = self._ctx.RawValue("b", 0)
        self._slots = {c.name: _Slot(c) for c in self.cameras}
        self._lock = threading.Lock()
        self._watch_thread: threading.Thread | None = None
        self._watching = threading.Event()
        self._backbone: Backbone | None = None
        # Answers clock queries (rigcap.wire.ClockServer) so a fusion host can measure this
        # host's clock offset (rigcap live --hosts); None: no clock server.
        self.clock_endpoint = clock_endpoint
        self._clock = None
        self.keys = keys  # rigcap.wire.security.ClientKeys: the backbone's XPUB and the clock server are CURVE clients
        # The readers relay (rigcap.wire.Relay): the backbone's stream again at readers_endpoint, for hosts
        # on the readers' allow-list (reader_keys: rigcap.wire.security.ReaderKeys); None: no relay.
        self.readers_endpoint = readers_endpoint
        self.reader_keys = reader_keys
        self._relay = None
        self.events: list[dict] = []  # restarts, failures, errors (for reports)
        self.started = False

    @classmethod
    def from_config(cls, config: CaptureConfig, record_dir=None, **kw) -> "Supervisor":
        args = dict(pub_endpoint=config.pub_endpoint, sub_endpoint=config.sub_endpoint, record_dir=record_dir,
                    detector=config.detector, detector_options=config.detector_options,
                    max_restarts=config.max_restarts, restart_delay_s=config.restart_delay_s,
                    clock_endpoint=config.clock_endpoint, readers_endpoint=config.readers_endpoint, session_info={"config_file": config.path, "rig_file": config.rig_file, "config": config.raw})
        if "detector_options" not in kw:
            args["detector"], args["detector_options"] = config.detector_for(kw.pop("detector", None))
        args.update(kw)
        return cls(config.cameras, **args)

    def _start_relay(self) -> None:
        from rigcap.errors import RigcapError
        from rigcap.wire import Relay

        if self._keys_for(self.sub_endpoint) is not None:
            raise RigcapError(f"[endpoints] readers: this host's backbone ({self.sub_endpoint}) is keyed to the fusion "
                              "machine (server_key) and only it can read it; readers read the fusion machine's relay")
        try:
            self._relay = Relay(self.sub_endpoint, self.readers_endpoint, keys=self.reader_keys).start()
        except EndpointError as exc:
            if self._backbone is not None:
                self._backbone.stop()
            raise EndpointError(f"[endpoints] readers: {exc}") from None

    @property
    def readers_refused(self) -> int:
        """Hosts refused at the readers relay (key not on the readers' list, or plain)."""
        return self.reader_keys.refused if self.reader_keys is not None else 0

    def _keys_for(self, endpoint: str):
        """The keys for a link at ``endpoint``: none on loopback (as the fusion node's side: it reads a
        loopback backbone or clock plain), else :attr:`keys`."""
        from rigcap.wire.security import is_loopback

        return None if is_loopback(endpoint) else self.keys

    @property
    def epoch_ns(self) -> int | None:
        return self.options.epoch_ns

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Supervisor":
        if self.started:
            return self
        if self.own_backbone:
            try:
                self._backbone = Backbone(self.pub_endpoint, self.sub_endpoint, keys=self._keys_for(self.sub_endpoint)).start()
            except EndpointError as exc:
                raise EndpointError(f"another rigcap capture (or another program) already serves "
                                    f"{self.pub_endpoint} / {self.sub_endpoint}: stop it first, or choose other "
                                    f"endpoints ({exc})") from None
        if self.readers_endpoint:
            self._start_relay()
        if self.clock_endpoint:
            from rigcap.wire import ClockServer

            try:
                self._clock = ClockServer(self.clock_endpoint, keys=self._keys_for(self.clock_endpoint)).start()
            except OSError as exc:  # another process serves the clock here already: not fatal
                self._event({"camera": None, "event": "clock_server", "message": str(exc)})
        self.options.epoch_ns = time.time_ns() + int(self.start_delay_s * 1e9)
        if self.record_dir is not None:
            from capture.recording import write_session_start

            info = dict(self.session_info)
            write_session_start(self.record_dir, [c.to_dict() for c in self.cameras], info.pop("config", None),
                                info.pop("rig_file", None), self.options.epoch_ns,
                                extra={"detector": self.options.detector, **info})
        for slot in self._slots.values():
            self._spawn(slot)
        self.started = True
        self._watching.set()
        self._watch_thread = threading.Thread(target=self._watch, name="rigcap-supervisor", daemon=True)
        self._watch_thread.start()
        return self

    def _spawn(self, slot: _Slot) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=camera_process_main, name=f"rigcap-{slot.camera.name}",
                                 args=(slot.camera, self.options, self._stop_flag, writer), daemon=False)
        proc.start()
        writer.close()
        if slot.events is not None:
            slot.events.close()
        slot.process = proc
        slot.events = reader
        slot.status.pid = proc.pid
        slot.status.state = "starting" if slot.status.restarts == 0 else "running"
        slot.status.exitcode = None
        slot.restart_at = None

    def _event(self, event: dict) -> None:
        self.events.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken callback must not stop supervision
                pass

    def _drain_events(self) -> None:
        for slot in self._slots.values():
            while slot.events is not None:
                try:
                    if not slot.events.poll():
                        break
                    ev = slot.events.recv()
                except (EOFError, OSError):  # the process is gone; its exit is handled in poll()
                    break
                self._handle(slot, ev)

    def _handle(self, slot: _Slot, ev: dict) -> None:
        with self._lock:
            kind = ev.get("event")
            if kind == "stats":
                slot.status.stats = {k: v for k, v in ev.items() if k != "event"}
                if slot.status.state == "starting":
                    slot.status.state = "running"
            elif kind == "started":
                slot.status.source = ev.get("source", {})
                slot.status.state = "running"
            elif kind in ("error", "warning"):
                slot.status.message = ev.get("message")
                self._event(ev)
            elif kind == "ended":
                slot.status.message = "end of video"

    def poll(self) -> list[CameraStatus]:
        """Check every process once (the watch thread calls this); returns :meth:`status`."""
        self._drain_events()
        now = time.monotonic()
        with self._lock:
            for slot in self._slots.values():
                st = slot.status
                proc = slot.process
                if st.state in ("failed", "finished", "stopped"):
                    continue
                if st.state == "restarting":
                    if self._stop_flag.value:
                        st.state = "stopped"
                    elif slot.restart_at is not None and now >= slot.restart_at:
                        st.restarts += 1
                        self._event({"camera": st.name, "event": "restart", "restarts": st.restarts})
                        self._spawn(slot)
                    continue
                if proc is None or proc.is_alive():
                    continue
                proc.join(0)
                st.exitcode = proc.exitcode
                st.pid = None
                if self._stop_flag.value:
                    st.state = "stopped"
                elif proc.exitcode == EXIT_OK:
                    st.state = "finished"
                    self._event({"camera": st.name, "event": "finished"})
                else:
                    self._event({"camera": st.name, "event": "died", "exitcode": proc.exitcode,
                                 "message": st.message})
                    if st.restarts >= self.max_restarts:
                        st.state = "failed"
                        self._event({"camera": st.name, "event": "failed",
                                     "message": f"left out after {st.restarts} restart(s)"})
                    else:
                        st.state = "restarting"
                        slot.restart_at = now + self.restart_delay_s
        return self.status()

    def _watch(self) -> None:
        while self._watching.is_set():
            self.poll()
            time.sleep(0.1)

    def status(self) -> list[CameraStatus]:
        with self._lock:
            return [CameraStatus(**vars(s.status)) for s in self._slots.values()]

    def pid(self, camera: str) -> int | None:
        return self._slots[camera].status.pid

    @property
    def alive(self) -> bool:
        """Some camera is running or about to be restarted."""
        return any(s.state in ("starting", "running", "restarting") for s in self.status())

    def wait(self, seconds: float | None = None) -> None:
        """Block until ``seconds`` passed or no camera is left running."""
        end = None if seconds is None else time.monotonic() + seconds
        while self.alive and (end is None or time.monotonic() < end):
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> list[CameraStatus]:
        """Stop every camera cleanly (recordings closed, session finalized), then the backbone."""
        if not self.started:
            return self.status()
        self._stop_flag.value = 1
        deadline = time.monotonic() + timeout_s
        for slot in self._slots.values():
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
        for slot in self._slots.values():
            proc = slot.process
            if proc is not None and proc.is_alive():  # did not stop in time
                proc.terminate()
                proc.join(2)
                if proc.is_alive():
                    proc.kill()
                    proc.join(1)
        self._watching.clear()
        if self._watch_thread is not None:
            self._watch_thread.join(2)
        self.poll()
        with self._lock:
            for slot in self._slots.values():
                if slot.status.state in ("starting", "running", "restarting"):
                    slot.status.state = "stopped"
        if self.record_dir is not None:
            from capture.recording import finalize_session

            finalize_session(self.record_dir, {"cameras": {s.name: {"state": s.state, "restarts": s.restarts}
                                                            for s in self.status()}})
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self._backbone is not None:
            self._backbone.stop()
            self._backbone = None
        if self._clock is not None:
            self._clock.stop()
            self._clock = None
        for slot in self._slots.values():
            if slot.events is not None:
                slot.events.close()
                slot.events = None
        self.started = False
        return self.status()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
