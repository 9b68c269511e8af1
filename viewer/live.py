"""Live view: draw the newest 3D skeleton from any source, never holding the source up.

The window (:class:`viewer.window.SceneWindow`) asks a *poll* callable for the
newest ``(points (J, 3), n_views (J,))`` each tick; anything that can answer
"what is newest, if anything new" plugs in:

* :func:`poll_latest` turns any iterator (a generator, a file replay, a
  blocking queue reader) into such a callable: a daemon thread consumes the
  iterator and keeps only the last item;
* :class:`Kp3dSource` is the ZeroMQ one: the shared
  :class:`rigcap.wire.Subscriber` in latest-only mode (each tick it drains what
  is queued, within a time budget, and decodes only the newest, through the one
  ``kp3d`` validator).  The fusion node's PUB socket never blocks on a slow
  subscriber either way.

``kp3d`` is documented in :mod:`rigcap.wire`; the viewer draws ``points``
(the first person of a multi-person message) with ``n_views``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

import numpy as np

from calibration.rig import Rig
from triangulate.skeletons import SKELETONS, Skeleton
from viewer.window import SceneWindow, Update


def poll_latest(updates: Iterable[Update]) -> Callable[[], Update | None]:
    """A non-blocking poll over an iterator: returns its newest item once, else ``None``."""
    lock = threading.Lock()
    box: list = [None]

    def consume() -> None:
        for item in updates:
            with lock:
                box[0] = item

    threading.Thread(target=consume, name="rigcap-live-source", daemon=True).start()

    def poll() -> Update | None:
        with lock:
            item, box[0] = box[0], None
        return item

    return poll


def message_to_update(msg) -> tuple[Update, str | None]:
    """A decoded ``kp3d`` :class:`rigcap.wire.Message` -> ``((points, n_views), skeleton name)``."""
    points = np.asarray(msg.arrays["points"], dtype=np.float64)
    if points.ndim == 3:
        points = points[0] if len(points) else np.full(points.shape[1:], np.nan)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"kp3d 'points' must be (joints, 3) or (persons, joints, 3), got {msg.arrays['points'].shape}")
    n_views = msg.arrays.get("n_views")
    if n_views is not None:
        n_views = np.asarray(n_views)
        n_views = n_views[0] if n_views.ndim == 2 else n_views  # (persons, joints): the first person
    return (points, n_views), msg.header.get("skeleton")


class Kp3dSource:
    """Latest-only ``kp3d`` subscriber; call it (``source()``) for the newest update or ``None``.

    The shared :class:`rigcap.wire.Subscriber` in ``latest_only`` mode does the
    draining and the validation (every ``kp3d`` reader uses the one validator).
    Counters: ``received`` (valid messages decoded), ``skipped`` (messages
    published but never returned, from the sequence numbers: drained past or
    dropped by ZeroMQ), ``malformed`` (refused by the validator).
    """

    def __init__(self, endpoint: str, topic: str = "kp3d", bind: bool = False, drain_budget_s: float = 0.002):
        from rigcap.wire import Subscriber

        self.sub = Subscriber(endpoint, topics=topic, latest_only=True, bind=bind, drain_budget_s=drain_budget_s)
        self.skeleton_name: str | None = None
        self.last_seq: int | None = None
        self.skipped = 0

    @property
    def received(self) -> int:
        return self.sub.received

    @property
    def malformed(self) -> int:
        return self.sub.malformed

    def __call__(self) -> Update | None:
        msg = self.sub.recv(0)
        if msg is None:
            return None
        update, self.skeleton_name = message_to_update(msg)
        if self.last_seq is not None and msg.seq > self.last_seq + 1:
            self.skipped += msg.seq - self.last_seq - 1
        self.last_seq = msg.seq
        return update

    def close(self) -> None:
        self.sub.close()


def view_live(rig: Rig, endpoint: str, skeleton: Skeleton | None = None, size=(1280, 720),
              rate_hz: float = 60.0, visible: bool = True,
              max_seconds: float | None = None) -> tuple[SceneWindow, Kp3dSource]:
    """Open a window drawing the newest ``kp3d`` skeleton published at ``endpoint`` until it closes.

    The skeleton comes from ``skeleton``, else the messages' ``skeleton`` header
    field, else the joint count.  Returns the (closed) window and the (closed)
    source, for their counters.
    """
    source = Kp3dSource(endpoint)
    window = SceneWindow(rig, skeleton, size, title=f"rigcap live - {endpoint}", visible=visible)

    def poll() -> Update | None:
        update = source()
        if update is not None and window.skeleton is None:
            named = SKELETONS.get((source.skeleton_name or "").lower())
            if named is not None and named.n_joints == len(update[0]):
                window.skeleton = named
        return update

    try:
        window.run(poll, rate_hz=rate_hz, max_seconds=max_seconds)
    finally:
        source.close()
    return window, source


def viewer_process_main(rig: Rig, endpoint: str, max_seconds: float | None = None) -> None:
    """Spawn target: a live window on ``endpoint``'s ``kp3d`` (module level, so a spawned process can import it)."""
    view_live(rig, endpoint, max_seconds=max_seconds)


def launch_viewer(rig: Rig, endpoint: str, max_seconds: float | None = None):
    """Start the live window in its own process (it never stalls the caller); returns the started process."""
    import multiprocessing as mp

    process = mp.get_context("spawn").Process(target=viewer_process_main, name="rigcap-viewer",
                                              args=(rig, endpoint, max_seconds), daemon=True)
    process.start()
    return process
