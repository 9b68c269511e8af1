"""The fusion node between real camera processes and a real subscriber, over ZeroMQ."""

import threading
import time

import numpy as np
import pytest
import zmq

from capture.config import CameraConfig
from triangulate.fusion_options import FusionOptions
from triangulate.fusion_node import FusionNode, read_fused_recording
from rigcap.wire import Publisher, Subscriber, free_tcp_endpoint
from capture.supervisor import Supervisor
from rigcap.studio.studio import SyntheticStudio, motion_cycle_ns

SEED = 5
FPS = 30.0
DURATION = 30.0


def synthetic_cameras(n=4):
    return [CameraConfig(f"cam_{i}", "synthetic", camera_index=i, n_cameras=n, seed=SEED, fps=FPS,
                         duration_s=DURATION) for i in range(n)]


@pytest.fixture
def live_rig(tmp_path):
    """Four synthetic camera processes and a fusion node thread, with a kp3d subscriber."""
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    studio = SyntheticStudio(n_cameras=4, fps=FPS, duration_s=DURATION, seed=SEED)
    sup = Supervisor(synthetic_cameras(), pub, sub, detector="synthetic", max_restarts=0, start_delay_s=1.0)
    out = Subscriber(sub, topics="kp3d")
    sup.start()
    node = FusionNode(studio.rig, sub, pub, FusionOptions(fps=FPS, smoothing=False, alive_window_s=0.3),
                      record_dir=tmp_path / "take")
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.update(node.run(stop)), daemon=True)
    thread.start()
    yield studio, sup, out, pub, stop, result, thread, tmp_path / "take"
    stop.set()
    thread.join(10)
    sup.stop()
    out.close()


def receive(out, seconds):
    msgs, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        m = out.recv(50)
        if m is not None:
            msgs.append(m)
    return msgs


def mpjpe_mm(studio, msgs):
    """Against the truth within the motion's cycle: camera processes that spawn late on a loaded
    machine film the studio's second pass, which the truth does not repeat by itself."""
    errs = []
    cycle = motion_cycle_ns(studio.n_frames, studio.fps)
    for m in msgs:
        t = (m.header["t_capture_ns"] - studio_epoch(m)) % cycle
        d = np.linalg.norm(m.arrays["points"] - studio.truth_at(t), axis=-1)
        errs.append(d[np.isfinite(d)])
    return 1000 * float(np.mean(np.concatenate(errs)))


def studio_epoch(msg):
    """Capture times on the wire are wall clock; the studio's truth is relative to the supervisor's epoch."""
    return msg.header["_epoch_ns"]


def wait_for_four_cameras(out, sup, timeout=60.0):
    """Camera processes take seconds to spawn and import; wait for the first full instant."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = out.recv(100)
        if m is not None and len(m.header["cameras"]) == 4:
            return
    raise AssertionError(f"no 4-camera instant: {[(s.name, s.state, s.message) for s in sup.status()]}")


def test_fusion_node_publishes_accurate_3d_and_survives_a_dead_camera_and_garbage(live_rig):
    studio, sup, out, pub_ep, stop, result, thread, record = live_rig
    wait_for_four_cameras(out, sup)
    msgs = receive(out, 4.0)
    # Timing bounds are loose (CI shares 2 cores with other jobs); accuracy bounds are not.
    assert len(msgs) > 40, [(s.name, s.state, s.message) for s in sup.status()]
    for m in msgs:
        m.header["_epoch_ns"] = sup.epoch_ns
    steady = [m for m in msgs if len(m.header["cameras"]) == 4]
    assert len(steady) > 30
    assert all(len(set(m.header["frames"].values())) == 1 for m in steady)
    assert mpjpe_mm(studio, steady) < 30.0

    # A malformed message on the same bus is counted and dropped.
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.connect(pub_ep)
    time.sleep(0.3)
    for _ in range(5):
        raw.send_multipart([b"kp2d.cam_0", b"{not json", b"\x00" * 7])
    raw.close()

    # Kill one camera: the node goes on with the other three.
    import os
    import signal

    os.kill(sup.pid("cam_2"), signal.SIGKILL)
    time.sleep(1.0)
    after = receive(out, 2.5)
    for m in after:
        m.header["_epoch_ns"] = sup.epoch_ns
    assert len(after) > 25
    tail = after[len(after) // 2:]
    assert all("cam_2" not in m.header["cameras"] for m in tail)
    # A camera starved of CPU can miss an instant's deadline now and then: most have all three.
    assert np.mean([len(m.header["cameras"]) == 3 for m in tail]) > 0.8
    assert mpjpe_mm(studio, tail) < 40.0

    stop.set()
    thread.join(10)
    assert result["malformed"] == 5
    assert result["added_latency_ms_p50"] < 50.0  # the target (< 5 ms p99) is in benchmarks/bench_demo.py
    recorded = read_fused_recording(record)
    assert recorded.n_frames >= len(msgs) + len(after)
    assert (record / "points3d.npz").is_file()


def test_messages_with_another_skeleton_or_camera_are_counted_not_fused(tmp_path):
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    from rigcap.wire import Backbone
    from triangulate.skeletons import COCO17

    studio = SyntheticStudio(n_cameras=2, fps=FPS, duration_s=1.0, seed=1)
    with Backbone(pub, sub):
        node = FusionNode(studio.rig, sub, pub, FusionOptions(fps=FPS), skeleton=studio.skeleton)
        sender = Publisher(pub)
        time.sleep(0.5)
        now = time.time_ns()
        sender.publish_kp2d("cam_0", 0, now, np.zeros((1, 17, 3), np.float32), COCO17)
        sender.publish_kp2d("cam_9", 0, now, np.zeros((1, 26, 3), np.float32), studio.skeleton)
        for cam in ("cam_0", "cam_1"):
            sender.publish_kp2d(cam, 1, now, studio.keypoints(0, 1)[None], studio.skeleton)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and node.stats.messages_in < 4:
            node.step(50)
        node.step(50)
        assert node.stats.wrong_skeleton == 1
        assert node.stats.unknown_camera == 1
        assert node.stats.cameras_seen == {"cam_0": 1, "cam_1": 1}
        node.close()
        sender.close()


def drive(node, until, seconds=5.0):
    """Step the node until ``until(node)`` holds (or ``seconds`` pass), then once more."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until(node):
        node.step(50)
    node.step(50)


def send_instants(sender, studio, n, t0_ns, skeleton, bogus=None):
    """``n`` instants of every studio camera, 1/30 s apart from ``t0_ns``; ``bogus(cam, f)`` -> capture time or None."""
    for f in range(n):
        for c, cam in enumerate(studio.rig.names):
            t = t0_ns + int(f * 1e9 / FPS)
            if bogus is not None and bogus(cam, f) is not None:
                t = bogus(cam, f)
            sender.publish_kp2d(cam, f, t, studio.keypoints(c, f)[None], skeleton)


def test_one_message_from_a_host_with_a_wrong_clock_is_dropped_and_silences_nothing():
    """Reviewer's case: one kp2d stamped an hour ahead used to set the late watermark to the future
    (3 of 30 instants out, the rest dropped as late).  Now it is a counted clock outlier."""
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    from rigcap.wire import Backbone

    studio = SyntheticStudio(n_cameras=2, fps=FPS, duration_s=2.0, seed=1)
    with Backbone(pub, sub):
        node = FusionNode(studio.rig, sub, pub, FusionOptions(fps=FPS, smoothing=False))
        sender = Publisher(pub)
        time.sleep(0.5)
        t0 = time.time_ns() - 1_500_000_000  # recent past: capture times all before their arrival
        hour = 3600 * 10**9
        send_instants(sender, studio, 15, t0, studio.skeleton,
                      bogus=lambda cam, f: t0 + hour if (cam, f) == ("cam_1", 2) else None)
        drive(node, lambda n: n.stats.messages_in >= 30)
        time.sleep(0.1)  # past every deadline: what is pending is flushed
        drive(node, lambda n: False, seconds=0.1)
        send_instants(sender, studio, 15, t0 + int(15 * 1e9 / FPS), studio.skeleton)
        drive(node, lambda n: n.stats.messages_in >= 60)
        drive(node, lambda n: n.stats.instants_out >= 30, seconds=1.0)
        assert node.stats.late_dropped == 0
        assert node.stats.instants_out == 30  # frame 2 without cam_1, all others with both cameras
        assert node.stats.clock_outlier == 1
        assert node.stats.summary(1.0)["clock_outlier"] == 1
        node.close()
        sender.close()


def test_an_unknown_sender_or_one_rig_camera_cannot_choose_the_skeleton():
    """Reviewer's case: one message from camera "intruder" with a 2-joint custom skeleton used to lock the node
    (0 instants out, everything else wrong_skeleton).  Unknown cameras are now refused before their skeleton is
    read, and a skeleton is adopted only when two rig cameras send it."""
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    from rigcap.wire import Backbone
    from triangulate.skeletons import Skeleton

    studio = SyntheticStudio(n_cameras=2, fps=FPS, duration_s=1.0, seed=1)
    rogue = Skeleton("rogue", ("a", "b"), (("a", "b"),))
    with Backbone(pub, sub):
        node = FusionNode(studio.rig, sub, pub, FusionOptions(fps=FPS, smoothing=False))
        sender = Publisher(pub)
        time.sleep(0.5)
        t0 = time.time_ns() - 1_000_000_000
        sender.publish_kp2d("intruder", 0, t0, np.zeros((1, 2, 3), np.float32), rogue)
        sender.publish_kp2d("cam_0", 0, t0, np.zeros((1, 2, 3), np.float32), rogue)  # one rig camera alone
        send_instants(sender, studio, 10, t0 + 10_000_000, studio.skeleton)
        drive(node, lambda n: n.stats.messages_in >= 22)
        drive(node, lambda n: n.stats.instants_out >= 10, seconds=1.0)
        assert node.skeleton.joint_names == studio.skeleton.joint_names
        assert node.stats.unknown_camera == 1
        assert node.stats.wrong_skeleton == 1  # cam_0's rogue message, once the real skeleton was adopted
        assert node.stats.instants_out == 10  # the first instant, held until adoption, is fused too
        assert node.stats.cameras_seen == {"cam_0": 10, "cam_1": 10}
        node.close()
        sender.close()
