"""Camera sources: pacing, frame indices on the rig's timeline, recorded timestamps, the synthetic camera."""

import time

import cv2
import numpy as np
import pytest

from capture.config import CameraConfig
from capture.sources import SourceError, VideoFileSource, make_source


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "cam_0.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    for i in range(20):
        w.write(np.full((48, 64, 3), i * 10, np.uint8))
    w.release()
    return path


def test_unpaced_video_delivers_every_frame_then_ends(clip):
    src = VideoFileSource("a", clip, pace=False).open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert [f.index for f in frames] == list(range(20)) and src.fps == 20.0 and src.size == (64, 48)
    assert [int(f.image[0, 0, 0]) for f in frames[:3]] == pytest.approx([0, 10, 20], abs=3)


def test_paced_video_keeps_the_schedule_and_loops(clip):
    epoch = time.time_ns() + 50_000_000
    src = VideoFileSource("a", clip, pace=True, loop=True, epoch_ns=epoch).open()
    frames = [src.read() for _ in range(30)]
    src.close()
    assert [f.index for f in frames] == list(range(30))
    for f in frames:
        assert f.capture_time_ns == epoch + f.index * 50_000_000
    late = (frames[-1].monotonic_ns - frames[0].monotonic_ns) / 1e9
    assert 29 * 0.05 - 0.02 < late < 29 * 0.05 + 0.2


def test_paced_video_opened_late_starts_at_the_frame_due_now(clip):
    epoch = time.time_ns() - 500_000_000  # the rig started half a second ago: frame 10 is due
    src = VideoFileSource("a", clip, pace=True, epoch_ns=epoch).open()
    f = src.read()
    src.close()
    assert 10 <= f.index <= 12 and int(f.image[0, 0, 0]) == pytest.approx(f.index * 10, abs=3)


def test_recorded_timestamps_beside_the_video_are_used(clip):
    times = {i: 1_000_000_000 + i * 49_000_000 + (7_000_000 if i == 5 else 0) for i in range(20)}
    clip.with_name("cam_0.timestamps.csv").write_text(
        "frame_index,time_ns\n" + "".join(f"{i},{t}\n" for i, t in times.items()))
    src = VideoFileSource("a", clip, pace=False, epoch_ns=0).open()
    got = [src.read().capture_time_ns for _ in range(20)]
    src.close()
    assert got == [t - times[0] for t in times.values()]
    assert src.info().details["timestamps_file"].endswith("cam_0.timestamps.csv")


def test_caliscope_timestamps_are_read(shared_data):
    src = VideoFileSource("cam_1", shared_data / "caliscope-charuco-4cam" / "extrinsic" / "cam_1.mp4",
                          pace=False, epoch_ns=0).open()
    t = [src.read().capture_time_ns for _ in range(5)]
    src.close()
    assert src.timestamps_file.name == "timestamps.csv"
    d = np.diff(t)  # caliscope numbers this camera's rows from 26; the clip runs at about 6 fps
    assert t[0] == 0 and all(140e6 < x < 200e6 for x in d) and len(set(d.tolist())) > 1  # recorded jitter kept


def test_missing_video_raises_source_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource("a", tmp_path / "no.mp4").open()


def test_synthetic_camera_paces_at_studio_times_with_its_keypoints():
    pytest.importorskip("rigcap.studio.studio")
    from rigcap.studio.studio import SyntheticStudio

    studio = SyntheticStudio(n_cameras=2, fps=30.0, duration_s=1.0, seed=3)
    studio.image(1, 0)  # builds the renderer's caches (~1 s), which open() would otherwise do after the epoch
    epoch = time.time_ns() + 100_000_000
    cam = CameraConfig("c1", "synthetic", camera_index=1, n_cameras=2, duration_s=1.0, seed=3, render=True)
    src = make_source(cam, epoch)
    src.studio = studio
    src.open()
    frames, delivered = [], []
    for _ in range(40):  # past the studio's 30 frames: the motion repeats
        frames.append(src.read())
        delivered.append(time.time_ns())
    src.close()
    assert [f.index for f in frames] == list(range(40))
    for f, t_out in zip(frames[:30], delivered):
        assert f.capture_time_ns == epoch + studio.capture_time_ns(1, f.index)
        np.testing.assert_array_equal(f.keypoints[0], studio.keypoints(1, f.index))
        assert f.image.shape == (720, 1280, 3)
        # paced: never delivered before its capture time (lateness depends on the machine's load)
        assert t_out >= f.capture_time_ns - 1e6
    assert frames[30].capture_time_ns - frames[0].capture_time_ns == pytest.approx(1e9, abs=10e6)
