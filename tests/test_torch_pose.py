"""The TorchScript pose backend: a model file in, joints in image pixels out.

The models here are tiny TorchScript programs whose heatmaps peak where a
coloured blob is drawn, so the true answer is known to the pixel and the
whole chain is checked: person box, affine crop, normalisation, the model on
torch, heatmap / SimCC decoding, and the way back to image pixels.  The person
boxes come from BlazePose's person detector (the proposer ``mediapipe_multi``
uses) on the synthetic studio's rendered people, with the blobs drawn on them.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from capture.pose import DetectorError, create_detector  # noqa: E402
from capture.pose.torch_pose import IMAGENET_MEAN, IMAGENET_STD, decode_heatmaps  # noqa: E402

N_JOINTS = 17  # coco17


class _Blobs(torch.nn.Module):
    """Undoes the detector's normalisation; joint 0 ← red, 1 ← green, 2 ← blue, the rest ← red."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("channel", torch.tensor([0, 1, 2] + [0] * (N_JOINTS - 3)))


class BlobHeatmaps(_Blobs):
    """The blobs as heatmaps at stride 4."""

    def forward(self, x):
        rgb = (x * self.std + self.mean) / 255.0
        hm = torch.nn.functional.avg_pool2d(rgb, 4)
        return hm[:, self.channel]


class BlobSimCC(_Blobs):
    """The same blobs as SimCC vectors: per joint, brightness summed along each axis, 2 bins per pixel."""

    def forward(self, x):
        rgb = ((x * self.std + self.mean) / 255.0)[:, self.channel]
        col = rgb.amax(dim=2)
        row = rgb.amax(dim=3)
        col = torch.nn.functional.interpolate(col, scale_factor=2.0, mode="nearest")
        row = torch.nn.functional.interpolate(row, scale_factor=2.0, mode="nearest")
        return col, row


class PureColourHeatmaps(_Blobs):
    """Heatmaps of saturated colour only (red minus the other channels, ...), so a blob drawn on a
    rendered person is found and the white walls are not; weighted towards the crop's centre, as
    a top-down model answers for the person its box is centred on."""

    def forward(self, x):
        rgb = (x * self.std + self.mean) / 255.0
        pure = torch.relu(2 * rgb - rgb.sum(dim=1, keepdim=True))  # c - (the other two)
        hm = torch.nn.functional.avg_pool2d(pure, 4)
        h, w = hm.shape[2], hm.shape[3]
        ys = (torch.arange(h, dtype=hm.dtype) + 0.5) / h - 0.5
        xs = (torch.arange(w, dtype=hm.dtype) + 0.5) / w - 0.5
        centre = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * 0.3**2))
        return (hm * centre)[:, self.channel]


def save(module, path):
    """TorchScript (.pt) or a torch.export program (.pt2), the two formats users bring."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if str(path).endswith(".pt2"):
            example = torch.zeros(1, 3, 256, 192)
            torch.export.save(torch.export.export(module, (example,)), str(path))
        else:
            torch.jit.script(module).save(str(path))
    return str(path)


def blob_image(centres, size=(640, 480), sigma=10.0):
    """BGR image, black, with a Gaussian blob per colour (red, green, blue) at ``centres``."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    for bgr_channel, (cx, cy) in zip((2, 1, 0), centres):
        img[:, :, bgr_channel] = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return np.round(img).astype(np.uint8)


CENTRES = [(200.0, 150.0), (420.0, 300.0), (310.0, 380.0)]


def test_decode_heatmaps_finds_subpixel_peaks():
    h, w = 64, 48
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.array([[10.3, 20.7], [30.0, 40.0], [5.5, 50.2]])
    hm = np.exp(-((xx - truth[:, :1, None]) ** 2 + (yy - truth[:, 1:, None]) ** 2) / (2 * 2.0**2))
    kp = decode_heatmaps(hm)
    np.testing.assert_allclose(kp[:, :2], truth, atol=0.12)
    np.testing.assert_allclose(kp[:, 2], 1.0, atol=0.1)


@pytest.mark.parametrize("kind,suffix", [("heatmaps", ".pt"), ("simcc", ".pt"), ("heatmaps", ".pt2")])
def test_joints_land_on_the_blobs_in_image_pixels(tmp_path, kind, suffix):
    module = BlobHeatmaps() if kind == "heatmaps" else BlobSimCC()
    model = save(module, tmp_path / f"{kind}{suffix}")
    det = create_detector("torchscript", model=model, skeleton="coco17", device="cpu", min_confidence=0.2,
                          boxes="whole_image")  # blobs on black: nobody for a person detector
    assert det.skeleton.n_joints == N_JOINTS
    image = blob_image(CENTRES)
    first = det.detect(image)
    assert first.shape == (1, N_JOINTS, 3)
    # Whole image as the box: 640 px onto a 192 px input, so one heatmap pixel
    # (stride 4) is ~13 image pixels; SimCC bins are ~1.7 image pixels.
    tol_first = 3.5 if kind == "heatmaps" else 2.5
    np.testing.assert_allclose(first[0, :3, :2], CENTRES, atol=tol_first)
    np.testing.assert_allclose(first[0, 3:, :2], np.repeat([CENTRES[0]], N_JOINTS - 3, axis=0), atol=tol_first)
    assert (first[0, :, 2] > 0.5).all()
    # Second frame: the box follows the joints found, the crop is finer, the
    # answer at least as good.
    second = det.detect(image)
    err_first = np.abs(first[0, :3, :2] - CENTRES).max()
    err_second = np.abs(second[0, :3, :2] - CENTRES).max()
    print(f"{kind}{suffix}: max error {err_first:.2f} px (whole image), {err_second:.2f} px (tracked box)")
    assert err_second <= max(err_first, 1.0)
    assert det._box is not None and det._box[2] - det._box[0] < 300


@pytest.mark.parametrize("boxes", ["detector", "whole_image"])
def test_no_person_gives_no_one(tmp_path, boxes):
    det = create_detector("torchscript", model=save(BlobHeatmaps(), tmp_path / "m.pt"), device="cpu", boxes=boxes)
    out = det.detect(np.zeros((480, 640, 3), np.uint8))
    assert out.shape == (0, N_JOINTS, 3)


def _dotted_people():
    """Camera 0 of the 2-person studio with a red, green and blue dot on each person (hip, head,
    left ankle): the rendered people for the person detector, the dots for the blob model."""
    from rigcap.studio.crowd import CrowdStudio
    from triangulate.skeletons import HALPE26

    studio = CrowdStudio(n_persons=2, n_cameras=4, duration_s=1.0, seed=0, absence=None)
    img = studio.image(0, 0).astype(np.float64)
    px = studio.rig.cameras[0].project(studio.truth_for(0, 0).reshape(-1, 3)).reshape(2, -1, 2)
    dots = px[:, [HALPE26.index(n) for n in ("hip", "head", "left_ankle")]]  # (2 people, red/green/blue, 2)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for person in dots:
        for bgr, (cx, cy) in zip((2, 1, 0), person):
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 8.0**2))[..., None]
            colour = np.zeros(3)
            colour[bgr] = 255
            img = img * (1 - blob) + colour * blob
    return np.round(img).astype(np.uint8), dots, px


def test_person_boxes_come_from_the_shared_proposer(tmp_path):
    """Two rendered people: the person detector's boxes (the proposer mediapipe_multi crops with)
    give one crop each, so the model runs per person and both come out, each on its own dots;
    the whole image as the box gives one person."""
    pytest.importorskip("ai_edge_litert")
    image, dots, px = _dotted_people()
    model = save(PureColourHeatmaps(), tmp_path / "pure.pt")
    det = create_detector("torchscript", model=model, device="cpu", min_confidence=0.2)
    assert det.proposer is not None and det.proposer.detect_every == 10
    people = det.detect(image)
    assert people.shape == (2, N_JOINTS, 3)
    err = np.linalg.norm(people[None, :, :3, :2] - dots[:, None], axis=-1).max(-1)  # (true person, detection)
    print("max dot error px, true person x detection:", err.round(1).tolist())
    assert sorted(err.argmin(1).tolist()) == [0, 1]  # each person is a different detection
    assert err.min(1).max() < 6.0  # measured 1.3, 1.6
    # the next frame crops the tracks: both again, the person detector not re-run
    runs = det.proposer.stats["whole_image_runs"]
    again = det.detect(image)
    assert len(again) == 2 and det.proposer.stats["whole_image_runs"] == runs
    # a proposal from outside (a 3D track projected here) is cropped too: with the detector off,
    # a box on one person gives that person
    det = create_detector("torchscript", model=model, device="cpu", min_confidence=0.2,
                          min_detection_confidence=1.01, tile_every=0)
    assert len(det.detect(image)) == 0
    det.propose([np.r_[px[1].min(0), px[1].max(0)]])
    one = det.detect(image)
    assert len(one) == 1 and np.linalg.norm(one[0, :3, :2] - dots[1], axis=-1).max() < 6.0
    whole = create_detector("torchscript", model=model, device="cpu", min_confidence=0.2, boxes="whole_image")
    assert len(whole.detect(image)) == 1


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        create_detector("torchscript", model=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="boxes must be one of detector, whole_image"):
        create_detector("torchscript", model=str(junk), boxes="yolo")
    with pytest.raises(DetectorError, match="junk.pt: not a TorchScript file"):
        create_detector("torchscript", model=str(junk))
    wrong = save(BlobHeatmaps(), tmp_path / "wrong.pt")
    det = create_detector("torchscript", model=wrong, skeleton="halpe26", device="cpu", boxes="whole_image")
    with pytest.raises(DetectorError, match="expected heatmaps"):
        det.detect(blob_image(CENTRES))
