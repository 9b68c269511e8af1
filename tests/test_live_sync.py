"""Live sync from motion: a camera whose timestamps are 40 ms off is found and corrected while the
fusion node runs, reported in the stats; a person standing still changes nothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from triangulate.fusion_options import FusionOptions
from triangulate.live_sync import LiveMotionSync
from triangulate.motion_sync import LOW_CONFIDENCE

FPS = 30.0
STAMP_OFF_NS = 40_000_000  # cam_2 stamps its frames 40 ms after they were taken
TOLERANCE_MS = 0.25 * 1000 / FPS  # a quarter of a frame


@pytest.fixture(scope="module")
def studio():
    return SyntheticStudio(n_cameras=4, fps=FPS, duration_s=12.0, seed=2, time_offsets_ms=0,
                           noise=DetectorNoise(time_jitter_ms=0.0))


def feed(sync, studio, frames, t0_ns, still=False):
    """Every camera's frames ``frames`` into ``sync``, cam_2's stamps late; ``poll`` after each frame."""
    for f in frames:
        t = t0_ns + int(f * 1e9 / FPS)
        for c, cam in enumerate(studio.rig.names):
            kp = studio.keypoints(c, 0 if still else f)
            sync.add(cam, t + (STAMP_OFF_NS if cam == "cam_2" else 0), kp)
        sync.poll(t)


def test_an_offset_camera_is_found_and_applied(studio):
    sync = LiveMotionSync(studio.rig, studio.skeleton.joint_names, FPS, background=False)
    assert sync.correction_ns("cam_2") == 0
    feed(sync, studio, range(int(10 * FPS)), 10**18)
    snap = sync.snapshot()
    assert snap["estimates"] >= 1 and snap["reference"] == "cam_0"
    got = snap["cameras"]
    assert abs(got["cam_2"]["applied_ms"] + 40.0) < TOLERANCE_MS, got
    assert got["cam_2"]["confidence"] >= LOW_CONFIDENCE
    for cam in ("cam_1", "cam_3"):
        assert abs(got[cam]["applied_ms"]) < TOLERANCE_MS, got
    assert abs(sync.correction_ns("cam_2") + STAMP_OFF_NS) < TOLERANCE_MS * 1e6


def test_a_still_person_is_reported_doubtful_and_changes_nothing(studio):
    sync = LiveMotionSync(studio.rig, studio.skeleton.joint_names, FPS, background=False)
    feed(sync, studio, range(int(10 * FPS)), 10**18, still=True)
    got = sync.snapshot()["cameras"]
    assert got and all(c["confidence"] < LOW_CONFIDENCE for c in got.values()), got
    assert all(sync.correction_ns(cam) == 0 for cam in studio.rig.names)


def test_options_and_flag():
    import argparse

    from rigcap.fusion_args import add_fusion_arguments, fusion_options

    p = argparse.ArgumentParser()
    add_fusion_arguments(p)
    assert fusion_options(p.parse_args(["--motion-sync"])).motion_sync is True
    assert fusion_options(p.parse_args([])).motion_sync is False
    assert FusionOptions.from_table({"motion_sync": True}, "x.toml").motion_sync is True
    from rigcap.errors import InputFileError

    with pytest.raises(InputFileError, match="motion_sync must be true or false"):
        FusionOptions.from_table({"motion_sync": 1}, "x.toml")


@pytest.mark.slow
def test_live_session_converges_on_the_offset_and_regroups_the_frames(studio):
    """The fusion node over real ZeroMQ sockets, the studio's four cameras sent live at 30 fps,
    cam_2 stamped 40 ms late: at first its frame f lands in the others' instant f+1; once the
    background estimate is in (every 2 s over the last 4 s here), the stats report ~-40 ms and
    the instants pair the same frames again."""
    from rigcap.commands.fuse import stats_line
    from rigcap.wire import Backbone, Publisher, free_tcp_endpoint
    from triangulate.fusion_node import FusionNode

    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub):
        node = FusionNode(studio.rig, sub, pub, FusionOptions(fps=FPS, smoothing=False, motion_sync=True),
                          skeleton=studio.skeleton)
        node.engine.motion_sync.window_s, node.engine.motion_sync.interval_s = 4.0, 2.0
        sender = Publisher(pub)
        time.sleep(0.5)
        stop = threading.Event()
        t0 = time.time_ns()

        def send():
            for f in range(int(9 * FPS)):
                t = t0 + int(f * 1e9 / FPS)
                while time.time_ns() < t + 3_000_000 and not stop.is_set():  # sent ~3 ms after capture
                    time.sleep(0.0005)
                for c, cam in enumerate(studio.rig.names):
                    sender.publish_kp2d(cam, f, t + (STAMP_OFF_NS if cam == "cam_2" else 0),
                                        studio.keypoints(c, f)[None], studio.skeleton)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        pairs = []  # (publish time, cam_2's frame - cam_0's frame) per instant with both
        end = time.monotonic() + 10.5
        while time.monotonic() < end and (thread.is_alive() or time.monotonic() < end - 0.5):
            for inst in node.step(20):
                if "cam_0" in inst.frames and "cam_2" in inst.frames:
                    pairs.append((time.time_ns() - t0, inst.frames["cam_2"] - inst.frames["cam_0"]))
        stop.set()
        thread.join(5)
        summary = node.stats.summary(10.0)
        node.close()
        sender.close()
    ms = summary["motion_sync"]
    got = ms["cameras"]
    assert ms["estimates"] >= 2, ms
    assert abs(got["cam_2"]["applied_ms"] + 40.0) < TOLERANCE_MS, got
    assert all(abs(got[c]["applied_ms"]) < TOLERANCE_MS for c in ("cam_1", "cam_3")), got
    lag = np.array(pairs)
    early, late = lag[lag[:, 0] < 2.0e9, 1], lag[lag[:, 0] > 7.0e9, 1]
    assert (early == -1).mean() > 0.9, early  # before: cam_2's frame f grouped with the others' f+1
    assert (late == 0).mean() > 0.9, late  # after: the same frames together
    assert "motion sync vs cam_0:" in stats_line(summary, None) and "cam_2 -" in stats_line(summary, None)
