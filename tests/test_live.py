"""`rigcap live` and `rigcap fuse` end to end, and clock-offset correction between hosts.

No camera or display here: `rigcap live` runs a config of synthetic cameras
(separate processes); `rigcap fuse` and the two-host test are fed by a thread
publishing the synthetic studio's detections, with a skewed clock for the
"remote" host.  Accuracy is checked in mm against the studio's truth.
"""

from __future__ import annotations

import threading
import time
import tomllib

import numpy as np
import pytest

from calibration import save_rig
from triangulate.fusion_node import FusionNode, read_fused_recording
from triangulate.fusion_options import FusionOptions
from rigcap.wire import Backbone, ClockServer, Publisher, Subscriber, free_tcp_endpoint, measure_clock_offset
from rigcap.studio.studio import SyntheticStudio
from rigcap.cli import main

STUDIO_SECONDS = 15.0


@pytest.fixture(scope="module")
def studio():
    return SyntheticStudio(n_cameras=4, fps=30.0, duration_s=STUDIO_SECONDS, seed=0)


def mpjpe_mm(studio, points, times_rel_ns):
    """MPJPE against the truth; times relative to the studio start (its motion repeats)."""
    cycle = studio.n_frames * int(round(1e9 / studio.fps))
    t = np.asarray(times_rel_ns) % cycle
    keep = (t > 0.25e9) & (t < cycle - 0.05e9)  # away from the repeat point
    err = np.linalg.norm(points[keep] - studio.truth_at(t[keep]), axis=-1)
    return 1000 * float(np.nanmean(err)), int(keep.sum())


class StudioPublisher(threading.Thread):
    """Publishes the studio's detections in real time: camera c to ``endpoints[c]``, its clock skewed by ``skew_ns[c]``.

    A skew is nanoseconds, or a function of our wall clock returning them (a host whose clock drifts).
    """

    def __init__(self, studio, endpoints, skew_ns=None, seconds=3.0):
        super().__init__(daemon=True)
        self.studio, self.seconds = studio, seconds
        self.endpoints = endpoints
        self.skew_ns = skew_ns or [0] * len(endpoints)
        self.t0_ns = time.time_ns() + 300_000_000
        self.stop = threading.Event()

    def run(self):
        pubs = {e: Publisher(e) for e in set(self.endpoints)}
        st = self.studio
        try:
            for f in range(int(self.seconds * st.fps)):
                if self.stop.is_set():
                    break
                for c, endpoint in enumerate(self.endpoints):
                    t = self.t0_ns + st.capture_time_ns(c, f)
                    while time.time_ns() < t:
                        time.sleep(0.0005)
                    skew = self.skew_ns[c]  # a fixed skew, or a function of our time (a drifting clock)
                    pubs[endpoint].publish_kp2d(st.rig.names[c], f, t + (skew(t) if callable(skew) else skew),
                                                st.keypoints(c, f)[None],
                                                st.skeleton)
        finally:
            for p in pubs.values():
                p.close()


# ------------------------------------------------------------------ rigcap live
def write_config(folder, rig_name="rig.toml", n=4):
    pub, sub, clock = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    text = f'rig = "{rig_name}"\n[detector]\nname = "synthetic"\n[endpoints]\npub = "{pub}"\nsub = "{sub}"\nclock = "{clock}"\n'
    for i in range(n):
        text += (f'[[cameras]]\nname = "cam_{i}"\nsource = "synthetic"\ncamera_index = {i}\nn_cameras = 4\n'
                 f'duration_s = {STUDIO_SECONDS}\n')
    (folder / "live.toml").write_text(text)
    return folder / "live.toml"


def test_live_with_synthetic_cameras_records_accurate_3d(tmp_path, studio, capsys):
    save_rig(studio.rig, tmp_path / "rig.toml")
    config = write_config(tmp_path)
    rec, snap = tmp_path / "take", tmp_path / "last.png"
    sub_endpoint = tomllib.loads(config.read_text())["endpoints"]["sub"]
    angles, stop = [], threading.Event()

    def listen():  # the angles topic `--angles` adds beside kp3d, read like any client would
        with Subscriber(sub_endpoint, topics="angles") as sub:
            while not stop.is_set():
                msg = sub.recv(100)
                if msg is not None:
                    angles.append(msg)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    code = main(["live", "--config", str(config), "--seconds", "3", "--headless", "--record", str(rec), "--no-video",
                 "--snapshot", str(snap), "--interval", "1", "--angles", "--exercise", "squat"])
    stop.set()
    listener.join(2)
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(angles) >= 30 and "knee_flexion_right" in angles[-1].header["names"] and "reps" in angles[-1].header
    knee = [m.arrays["values"].reshape(-1, len(m.header["names"]))[0, m.header["names"].index("knee_flexion_right")]
            for m in angles]
    # counted from the first angle the fusion could make: before it, cameras still starting (1 s of
    # spawn and imports each on a loaded machine) leave single-camera instants with no 3D at all
    seen = np.flatnonzero(np.isfinite(knee))
    assert seen.size, "no finite knee angle in any angles message"
    knee = np.asarray(knee)[seen[0]:]
    assert np.isfinite(knee).mean() > 0.75 and 0 < np.nanmedian(knee) < 150  # degrees of a standing/squatting person (0.89-1.0 measured)
    assert "cameras 4 [cam_0,cam_1,cam_2,cam_3]" in out  # live stats lines name the cameras present
    points = read_fused_recording(rec)
    assert points.n_frames >= 30
    epoch = tomllib.loads((rec / "session.toml").read_text())["session"]["epoch_ns"]
    err, n = mpjpe_mm(studio, points.points, points.timestamps_ns - epoch)
    assert n >= 20 and err < 20.0
    assert (rec / "points3d.npz").is_file()
    assert snap.is_file() and snap.stat().st_size > 1000


def test_live_without_a_rig_is_one_line_error(tmp_path, capsys):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('rig = "rig.toml"\n', ""))
    assert main(["live", "--config", str(config), "--seconds", "1", "--headless"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--rig" in err and len(err.splitlines()) == 1


def test_live_with_an_unreachable_host_is_one_line_error(tmp_path, studio, capsys):
    save_rig(studio.rig, tmp_path / "rig.toml")
    config = write_config(tmp_path)
    host = f"{free_tcp_endpoint()}@{free_tcp_endpoint()}"
    assert main(["live", "--config", str(config), "--hosts", host, "--seconds", "1", "--headless"]) == 2
    err = capsys.readouterr().err.strip()
    assert "clock server" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------ rigcap fuse
def test_fuse_command_fuses_published_keypoints_and_records(tmp_path, studio, capsys):
    save_rig(studio.rig, tmp_path / "rig.toml")
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub):
        feeder = StudioPublisher(studio, [pub] * 4, seconds=3.0)
        feeder.start()
        code = main(["fuse", "--rig", str(tmp_path / "rig.toml"), "--sub", sub, "--pub", pub, "--seconds", "3.5",
                     "--record", str(tmp_path / "fused"), "--interval", "1"])
        feeder.stop.set()
        feeder.join(5)
    out = capsys.readouterr().out
    assert code == 0
    assert "cameras 4 [cam_0,cam_1,cam_2,cam_3]" in out and "latency added" in out
    points = read_fused_recording(tmp_path / "fused")
    assert points.n_frames >= 45
    err, n = mpjpe_mm(studio, points.points, points.timestamps_ns - feeder.t0_ns)
    assert n >= 40 and err < 20.0


# ------------------------------------------------------------------ two hosts
def test_remote_host_clock_offset_is_measured_and_corrected(tmp_path, studio):
    """cam_3 lives on a 'host' whose clock runs 47 ms ahead: measured, subtracted, grouped right."""
    skew = 47_000_000
    a_pub, a_sub, b_pub, b_sub, b_clock = (free_tcp_endpoint() for _ in range(5))
    results = {}
    with Backbone(a_pub, a_sub), Backbone(b_pub, b_sub), ClockServer(b_clock, clock=lambda: time.time_ns() + skew):
        offset = measure_clock_offset(b_clock, n=20)
        assert abs(offset.offset_ns - skew) < 2_000_000
        for label, offsets in (("corrected", [0, offset.offset_ns]), ("raw", [0, 0])):
            feeder = StudioPublisher(studio, [a_pub, a_pub, a_pub, b_pub], skew_ns=[0, 0, 0, skew], seconds=2.5)
            node = FusionNode(studio.rig, [a_sub, b_sub], a_pub, FusionOptions(fps=30.0), record_dir=tmp_path / label,
                              clock_offsets_ns=offsets)
            feeder.start()
            summary = node.run(duration_s=3.0)
            feeder.stop.set()
            feeder.join(5)
            points = read_fused_recording(tmp_path / label)
            results[label] = (summary, mpjpe_mm(studio, points.points, points.timestamps_ns - feeder.t0_ns))
    summary, (err, n) = results["corrected"]
    assert summary["cameras_per_instant"] > 3.8  # cam_3 grouped with the others
    assert summary["spread_ms_p50"] < 10
    assert n >= 40 and err < 20.0
    raw_summary, (raw_err, _) = results["raw"]
    assert raw_summary["spread_ms_p50"] > 10  # uncorrected, cam_3 lands in the wrong instants
    assert raw_err > err


def run_drifting_host(tmp_path, studio, drift: float, seconds: float, interval_s: float) -> dict:
    """cam_3 on a 'host' whose clock starts 10 ms ahead and gains ``drift`` s/s; fused twice.

    "followed": a ClockTracker re-measuring every ``interval_s``; "once": the offset measured at start.
    Returns per case (summary, cameras per instant over the last second, (MPJPE mm, instants scored)).
    """
    from rigcap.wire import ClockTracker

    skew0 = 10_000_000
    a_pub, a_sub, b_pub, b_sub, b_clock = (free_tcp_endpoint() for _ in range(5))
    origin = time.time_ns()

    def host_skew(t_ns):  # the host's clock minus ours at our time t
        return skew0 + int((t_ns - origin) * drift)

    def host_clock():
        t = time.time_ns()
        return t + host_skew(t)

    results = {}
    with Backbone(a_pub, a_sub), Backbone(b_pub, b_sub), ClockServer(b_clock, clock=host_clock):
        for label in ("followed", "once"):
            if label == "followed":
                offset = tracker = ClockTracker(b_clock, interval_s=interval_s, exchanges=8).start()
            else:
                offset = measure_clock_offset(b_clock, n=20).offset_ns
            feeder = StudioPublisher(studio, [a_pub, a_pub, a_pub, b_pub], skew_ns=[0, 0, 0, host_skew], seconds=seconds)
            node = FusionNode(studio.rig, [a_sub, b_sub], a_pub, FusionOptions(fps=30.0), record_dir=tmp_path / label,
                              clock_offsets_ns=[0, offset])
            feeder.start()
            summary = node.run(duration_s=seconds + 0.5)
            feeder.stop.set()
            feeder.join(5)
            if label == "followed":
                tracker.stop()
            points = read_fused_recording(tmp_path / label)
            late = np.asarray(node.stats.views)[-int(studio.fps):]  # cameras per instant over the last second
            results[label] = (summary, late, mpjpe_mm(studio, points.points, points.timestamps_ns - feeder.t0_ns))
    for label, (summary, late, (err, n)) in results.items():
        print(f"{drift * 1e3:g} ms/s for {seconds:g} s, offset {label}: {summary['cameras_per_instant']:.2f} "
              f"cameras/instant (last second {late.mean():.2f}), spread p50 {summary['spread_ms_p50']:.2f} ms, "
              f"MPJPE {err:.1f} mm over {n}, clocks {summary['clocks']}")
    return results


def check_drifting_host(results, drift: float) -> None:
    summary, late, (err, n) = results["followed"]
    assert summary["cameras_per_instant"] > 3.8 and late.mean() > 3.8  # cam_3 grouped with the others to the end
    assert summary["spread_ms_p50"] < 10
    assert n >= 40 and err < 20.0
    (clock,) = summary["clocks"].values()
    assert clock["uncertainty_ms"] < 1.0 and abs(clock["drift_ppm"] - drift * 1e6) < 0.1 * drift * 1e6
    once_summary, once_late, (once_err, _) = results["once"]
    assert once_late.mean() < 3.5  # a fixed offset: by the end cam_3 has drifted out of the others' instants
    assert once_err > err


def test_remote_host_whose_clock_drifts_stays_grouped_when_followed(tmp_path, studio):
    """Issue 16's 1 ms/s for a minute, sped up: 20 ms/s for 3 s (a fixed offset is 40-60 ms stale at the end)."""
    check_drifting_host(run_drifting_host(tmp_path, studio, drift=20e-3, seconds=3.0, interval_s=0.2), 20e-3)


@pytest.mark.slow
def test_remote_host_drifting_1ms_per_s_stays_grouped_for_a_minute(tmp_path):
    """The issue's case in real time: 1 ms/s for 60 s, re-measured every 2 s as `rigcap live` does."""
    studio = SyntheticStudio(n_cameras=4, fps=30.0, duration_s=62.0, seed=0)
    check_drifting_host(run_drifting_host(tmp_path, studio, drift=1e-3, seconds=60.0, interval_s=2.0), 1e-3)


def test_live_fusion_process_follows_a_remote_host_clock(studio):
    """rigcap live's fusion process (spawned, as LiveSession does) tracks the --hosts clock it is given."""
    import multiprocessing as mp

    from rigcap.live_session import RemoteHosts, fusion_process_main

    drift = 10e-3
    a_pub, a_sub, b_pub, b_sub, b_clock = (free_tcp_endpoint() for _ in range(5))
    origin = time.time_ns()

    def host_skew(t_ns):
        return 5_000_000 + int((t_ns - origin) * drift)

    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    with Backbone(a_pub, a_sub), Backbone(b_pub, b_sub), \
            ClockServer(b_clock, clock=lambda: time.time_ns() + host_skew(time.time_ns())):
        initial = measure_clock_offset(b_clock, n=20)
        remote = RemoteHosts([b_sub], [initial.offset_ns], [b_clock], [initial], clock_interval_s=0.2)
        proc = ctx.Process(target=fusion_process_main, args=(studio.rig, a_sub, a_pub, FusionOptions(fps=30.0), remote,
                                                              None, stop, results), kwargs={"skeleton": studio.skeleton})
        proc.start()
        time.sleep(1.5)  # the spawned process imports and subscribes
        feeder = StudioPublisher(studio, [a_pub, a_pub, a_pub, b_pub], skew_ns=[0, 0, 0, host_skew], seconds=3.0)
        feeder.start()
        feeder.join(10)
        stop.set()
        final = None
        deadline = time.monotonic() + 15
        while final is None and time.monotonic() < deadline:
            kind, summary = results.get(timeout=15)
            final = summary if kind == "final" else None
        proc.join(10)
    assert final is not None
    (clock,) = final["clocks"].values()
    print(f"fusion process: {final['cameras_per_instant']:.2f} cameras/instant, clock {clock}")
    assert abs(clock["drift_ppm"] - drift * 1e6) < 0.1 * drift * 1e6 and clock["rounds"] >= 10
    assert final["cameras_per_instant"] > 3.8


def test_hosts_are_parsed_with_the_config_ports():
    from rigcap.commands.live import parse_hosts
    from rigcap.errors import RigcapError

    hosts = parse_hosts(["10.0.0.12,tcp://cams-b:6000", "tcp://a:1@tcp://a:2"], "tcp://127.0.0.1:5556",
                        "tcp://127.0.0.1:5557")
    assert hosts == [("tcp://10.0.0.12:5556", "tcp://10.0.0.12:5557"), ("tcp://cams-b:6000", "tcp://cams-b:5557"),
                     ("tcp://a:1", "tcp://a:2")]
    with pytest.raises(RigcapError, match="ipc"):
        parse_hosts(["ipc:///tmp/x@tcp://a:2"], "tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557")


# ------------------------------------------------------------------ run_live (the loop both commands share)
class FakeSupervisor:
    alive = True

    def status(self):
        return []


class FakeSession:
    """Stands in for LiveSession: start() begins publishing kp3d on a real backbone; records what run_live does."""

    def __init__(self, pub, sub, fusion_dies_after_s=None):
        self.pub_endpoint, self.sub_endpoint, self.rig = pub, sub, "the rig"
        self.supervisor = FakeSupervisor()
        self.calls = []
        self.fusion_dies_after_s = fusion_dies_after_s
        self.halt = threading.Event()

    def start(self):
        self.calls.append("start")
        self.started = time.monotonic()
        threading.Thread(target=self._publish, daemon=True).start()

    def _publish(self):
        pub = Publisher(self.pub_endpoint)
        time.sleep(0.3)
        n = 0
        while not self.halt.is_set():
            cams = ["cam_0", "cam_1"] if n % 2 else ["cam_0"]
            pub.publish_kp3d(time.time_ns(), np.zeros((3, 3), "<f4"), cameras=cams, frames={c: n for c in cams},
                             skeleton_name="custom", joints_sha1_hex="0" * 8)
            n += 1
            time.sleep(0.01)
        pub.close()

    def drain_stats(self):
        return {"fake": True}

    def fusion_alive(self):
        return self.fusion_dies_after_s is None or time.monotonic() - self.started < self.fusion_dies_after_s

    def stop(self):
        self.calls.append("stop")
        self.halt.set()
        return {"final": True}, ["statuses"]


class FakeViewer:
    def __init__(self, rig, endpoint):
        self.args, self.terminated, self.joined = (rig, endpoint), False, False

    def terminate(self):
        self.terminated = True

    def join(self, timeout=None):
        self.joined = True


def test_run_live_counts_from_the_first_accepted_instant_and_tears_everything_down():
    from rigcap.live_session import run_live

    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub):
        session = FakeSession(pub, sub)
        viewers, firsts, seen, statuses = [], [], [], []
        run = run_live(session, seconds=0.5, start_timeout_s=10, latest_only=False,
                       viewer=lambda rig, ep: viewers.append(FakeViewer(rig, ep)) or viewers[-1],
                       is_first=lambda m: len(m.header["cameras"]) == 2, on_first=firsts.append,
                       on_message=seen.append, on_status=lambda s, st: statuses.append(s), status_interval_s=0.1)
    assert session.calls == ["start", "stop"]
    assert viewers[0].args == ("the rig", sub) and viewers[0].terminated and viewers[0].joined
    assert len(firsts) == 1 and firsts[0].header["cameras"] == ["cam_0", "cam_1"]
    assert seen[0] is firsts[0] and run.received == len(seen) > 10 and run.last is seen[-1]
    assert 0.5 <= run.elapsed_s < 2.0 and run.first_after_s > 0.2
    assert statuses and statuses[0] == {"fake": True}
    assert run.final == {"final": True} and run.statuses == ["statuses"] and not run.interrupted


def test_run_live_stops_everything_when_the_fusion_process_dies():
    from rigcap.live_session import run_live
    from rigcap.errors import RigcapError

    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub):
        session = FakeSession(pub, sub, fusion_dies_after_s=0.8)
        viewers = []
        with pytest.raises(RigcapError, match="fusion process exited"):
            run_live(session, seconds=None, viewer=lambda rig, ep: viewers.append(FakeViewer(rig, ep)) or viewers[-1])
    assert session.calls == ["start", "stop"] and viewers[0].terminated
