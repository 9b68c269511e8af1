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
with ``n_views`` (everybody, each in their own colour, when the message carries
``person_ids``; else the first person).
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
    """A decoded ``kp3d`` :class:`rigcap.wire.Message` -> ``((points, n_views[, person_ids]), skeleton name)``.

    A message with ``person_ids`` (several people) keeps everybody: each is drawn in their own colour."""
    points = np.asarray(msg.arrays["points"], dtype=np.float64)
    ids = msg.arrays.get("person_ids")
    if points.ndim == 3 and ids is not None:
        return (points, msg.arrays.get("n_views"), np.asarray(ids)), msg.header.get("skeleton")
    if points.ndim == 3:
        points = points[0] if len(points) else np.full(points.shape[1:], np.nan)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"kp3d 'points' must be (joints, 3) or (persons, joints, 3), got {msg.arrays['points'].shape}")
    n_views = msg.arrays.get("n_views")
    if n_views is not None:
        n_views = np.asarray(n_views)
        n_views = n_views[0] if n_views.ndim == 2 else n_views  # (persons, joints): the first person
    return (points, n_views), msg.header.get("skeleton")


def message_to_people(msg) -> tuple[tuple, str | None]:
    """A decoded ``kp3d`` message -> ``((points (P, J, 3), n_views (P, J) or None, person_ids (P,)), skeleton)``:
    every person, for the window that draws them all (:class:`viewer.gui.GuiWindow`)."""
    points = np.asarray(msg.arrays["points"], dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    n_views = msg.arrays.get("n_views")
    if n_views is not None:
        n_views = np.asarray(n_views).reshape(points.shape[:2])
    ids = msg.arrays.get("person_ids")
    ids = np.arange(len(points)) if ids is None else np.asarray(ids).reshape(-1)
    return (points, n_views, ids), msg.header.get("skeleton")


class LiveStats:
    """The live panel's numbers: the cameras' ``stats.<camera>`` messages and the ``kp3d`` stream's rate.

    Subscribes to ``stats.`` on the same endpoint as the skeletons (the
    session's backbone forwards every camera's stats there).  :meth:`lines`
    drains what arrived (never blocking) and formats :func:`viewer.gui.stats_lines`.
    """

    WINDOW_S = 2.0

    def __init__(self, endpoint: str, bind: bool = False, keys=None):
        from rigcap.wire import Subscriber

        self.sub = Subscriber(endpoint, topics="stats.", bind=bind, keys=keys)
        self.cameras: dict[str, dict] = {}
        self._arrivals: list[float] = []
        self.latency_ms: float | None = None
        self.people: int | None = None

    def saw_instant(self, msg_header: dict, people: int) -> None:
        now = time.monotonic()
        self._arrivals = [t for t in self._arrivals if now - t < self.WINDOW_S] + [now]
        t_capture = msg_header.get("t_capture_ns")
        self.latency_ms = (time.time_ns() - int(t_capture)) / 1e6 if t_capture else None
        self.people = people

    @property
    def instants_per_s(self) -> float | None:
        a = self._arrivals
        return (len(a) - 1) / (a[-1] - a[0]) if len(a) >= 2 and a[-1] > a[0] else None

    def lines(self) -> list[str]:
        from viewer.gui import stats_lines

        for _ in range(100):
            msg = self.sub.recv(0)
            if msg is None:
                break
            name = msg.header.get("camera") or msg.topic.split(".", 1)[-1]
            self.cameras[str(name)] = msg.header
        return stats_lines(self.cameras, self.instants_per_s, self.latency_ms, self.people)

    def close(self) -> None:
        self.sub.close()


class Kp3dSource:
    """Latest-only ``kp3d`` subscriber; call it (``source()``) for the newest update or ``None``.

    The shared :class:`rigcap.wire.Subscriber` in ``latest_only`` mode does the
    draining and the validation (every ``kp3d`` reader uses the one validator).
    Counters: ``received`` (valid messages decoded), ``skipped`` (messages
    published but never returned, from the sequence numbers: drained past or
    dropped by ZeroMQ), ``malformed`` (refused by the validator).
    """

    def __init__(self, endpoint: str, topic: str = "kp3d", bind: bool = False, drain_budget_s: float = 0.002,
                 keys=None):
        from rigcap.wire import Subscriber

        self.sub = Subscriber(endpoint, topics=topic, latest_only=True, bind=bind, drain_budget_s=drain_budget_s,
                              keys=keys)
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
        self.last_message = msg
        update, self.skeleton_name = message_to_update(msg)
        if self.last_seq is not None and msg.seq > self.last_seq + 1:
            self.skipped += msg.seq - self.last_seq - 1
        self.last_seq = msg.seq
        return update

    def close(self) -> None:
        self.sub.close()


class AnglesSource:
    """Latest-only ``angles`` subscriber (the fusion node publishes them with ``rigcap fuse --angles``);
    call it for the newest message's text, or ``None`` when nothing new came."""

    def __init__(self, endpoint: str, chosen: tuple[str, ...] = (), keys=None):
        from rigcap.wire import Subscriber

        self.sub = Subscriber(endpoint, topics="angles", latest_only=True, keys=keys)
        self.chosen = tuple(chosen)

    def __call__(self) -> str | None:
        msg = self.sub.recv(0)
        return None if msg is None else angles_text(msg, self.chosen)

    def close(self) -> None:
        self.sub.close()


def angles_text(msg, chosen: tuple[str, ...] = ()) -> str:
    """Lines of text for an ``angles`` message: each chosen angle (all when none chosen is in it) of
    the first person in degrees, then the exercise's rep count."""
    names = list(msg.header["names"])
    values = np.asarray(msg.arrays["values"], dtype=np.float64)
    values = values[0] if values.ndim == 2 else values
    picked = [n for n in chosen if n in names] or names[:4]
    lines = [f"{n.replace('_', ' ')}: {values[names.index(n)]:.0f} deg" if np.isfinite(values[names.index(n)])
             else f"{n.replace('_', ' ')}: -" for n in picked]
    if "exercise" in msg.header:
        reps = msg.header.get("reps") or [0]
        lines.append(f"{msg.header['exercise']} reps: {reps[0]}")
    return "\n".join(lines)


def view_live(rig: Rig, endpoint: str, skeleton: Skeleton | None = None, size=(1280, 720),
              rate_hz: float = 60.0, visible: bool = True,
              max_seconds: float | None = None, angles: tuple[str, ...] | None = None,
              keys=None, on_tick=None) -> tuple[SceneWindow, Kp3dSource]:
    """Open a window drawing the newest ``kp3d`` skeleton published at ``endpoint`` until it closes.

    The skeleton comes from ``skeleton``, else the messages' ``skeleton`` header
    field, else the joint count.  ``angles``: show these angles of the ``angles``
    topic (and its rep count) as text beside the skeleton (``()``: the first four).
    ``keys`` (:class:`rigcap.wire.security.ClientKeys`, this viewer host's): every subscription is a
    CURVE client of the fusion machine's readers relay.
    ``on_tick(window)`` runs after each of the window's ticks (tests).
    Returns the (closed) window and the (closed) source, for their counters.
    """
    source = Kp3dSource(endpoint, keys=keys)
    text_source = AnglesSource(endpoint, angles, keys=keys) if angles is not None else None
    if visible:
        from viewer.gui import GuiWindow, open_window

        live_stats = LiveStats(endpoint, keys=keys)
        angle_text = {"last": None}

        def panel_lines() -> list[str]:
            if text_source is not None:
                text = text_source()
                angle_text["last"] = text if text is not None else angle_text["last"]
            extra = angle_text["last"].splitlines() if angle_text["last"] else []
            return live_stats.lines() + extra

        window = open_window(rig, skeleton, size, f"rigcap live - {endpoint}", stats=panel_lines,
                             status=lambda: f"live: {endpoint}  {source.received} instants")
        if isinstance(window, GuiWindow):
            def poll_people():
                if source() is None:
                    return None
                people, _ = message_to_people(source.last_message)
                live_stats.saw_instant(source.last_message.header,
                                       int(np.isfinite(people[0]).all(-1).any(-1).sum()))
                if len(people[0]) == 1 and "person_ids" not in source.last_message.arrays:
                    return people[0][0], None if people[1] is None else people[1][0]  # one person: sides coloured
                return people

            try:
                window.run(poll_people, rate_hz=rate_hz, max_seconds=max_seconds, on_tick=on_tick)
            finally:
                source.close()
                live_stats.close()
                if text_source is not None:
                    text_source.close()
            return window, source
        live_stats.close()
    else:
        window = SceneWindow(rig, skeleton, size, title=f"rigcap live - {endpoint}", visible=False)

    def poll() -> Update | None:
        update = source()
        if update is not None and window.skeleton is None:
            named = SKELETONS.get((source.skeleton_name or "").lower())
            if named is not None and named.n_joints == len(update[0]):
                window.skeleton = named
        return update

    def show_angles(win: SceneWindow) -> None:
        if text_source is not None:
            text = text_source()
            if text is not None:
                win.set_text(text)
        if on_tick is not None:
            on_tick(win)

    try:
        window.run(poll, rate_hz=rate_hz, max_seconds=max_seconds,
                   on_tick=show_angles if text_source is not None or on_tick is not None else None)
    finally:
        source.close()
        if text_source is not None:
            text_source.close()
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
