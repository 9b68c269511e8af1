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


class VirtualClock:
    """Wall clock under the test's control: sleeping moves it; moving ``t`` plays a stalled process."""

    def __init__(self, start_ns: int):
        self.t = start_ns

    def now_ns(self) -> int:
        return self.t

    def sleep_until_ns(self, target_ns: int) -> None:
        self.t = max(self.t, target_ns)


def _synthetic_source(studio, epoch, clock=None):
    cam = CameraConfig("c1", "synthetic", camera_index=1, n_cameras=2, duration_s=1.0, seed=3)
    src = make_source(cam, epoch)
    src.studio = studio
    if clock is not None:
        src.clock = clock
    return src.open()


def test_synthetic_camera_paces_at_studio_times_with_its_keypoints():
    """On a virtual clock: every frame delivered exactly at its capture time, with the studio's keypoints,
    the motion repeating after the studio's length (the scheduler cannot make this flaky)."""
    pytest.importorskip("rigcap.studio.studio")
    from rigcap.studio.studio import SyntheticStudio

    studio = SyntheticStudio(n_cameras=2, fps=30.0, duration_s=1.0, seed=3)
    epoch = 1_700_000_000_000_000_000
    clock = VirtualClock(epoch - 50_000_000)
    src = _synthetic_source(studio, epoch, clock)
    frames, delivered = [], []
    for _ in range(40):  # past the studio's 30 frames: the motion repeats
        frames.append(src.read())
        delivered.append(clock.now_ns())
    expected = [i for i in range(45) if not studio.dropped(1, i % studio.n_frames)][:40]
    assert [f.index for f in frames] == expected
    for f, t_out in zip(frames, delivered):
        assert t_out == f.capture_time_ns == src.time_of(f.index)
        np.testing.assert_array_equal(f.keypoints[0], studio.keypoints(1, f.index % studio.n_frames))
    first_repeat = next(f for f in frames if f.index >= studio.n_frames)
    assert first_repeat.capture_time_ns - src.time_of(first_repeat.index - studio.n_frames) == pytest.approx(1e9, abs=1e6)


def test_synthetic_camera_behind_schedule_drops_to_the_newest_due_frame():
    """A process held up for 5 periods skips the frames a live camera would have dropped, then paces again."""
    pytest.importorskip("rigcap.studio.studio")
    from rigcap.studio.studio import SyntheticStudio

    studio = SyntheticStudio(n_cameras=2, fps=30.0, duration_s=1.0, seed=3)
    epoch = 1_700_000_000_000_000_000
    clock = VirtualClock(epoch)
    src = _synthetic_source(studio, epoch, clock)
    first = [src.read() for _ in range(3)]
    clock.t += 5 * src.period_ns  # the machine stalls
    late = src.read()
    assert late.index >= first[-1].index + 3  # frames in the stall are gone, not delivered late in a burst
    assert src.time_of(late.index + 1) > clock.now_ns() - src.period_ns  # the newest due frame
    after = [src.read() for _ in range(3)]  # the one frame still due goes out at once, then on schedule again
    assert [f.index for f in after] == sorted({f.index for f in after}) and after[0].index > late.index
    assert clock.now_ns() == after[-1].capture_time_ns


def test_synthetic_camera_on_the_real_clock_never_delivers_early():
    """Real clock, real images: frames come in order, never before their capture time (lateness is the machine's)."""
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
    for _ in range(10):
        frames.append(src.read())
        delivered.append(time.time_ns())
    src.close()
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    for f, t_out in zip(frames, delivered):
        assert f.capture_time_ns == src.time_of(f.index)
        assert f.image.shape == (720, 1280, 3)
        assert t_out >= f.capture_time_ns - 1e6
