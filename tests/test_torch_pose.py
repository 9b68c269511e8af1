"""The TorchScript pose backend: a model file in, joints in image pixels out.

The models here are tiny TorchScript programs whose heatmaps peak where a
coloured blob is drawn, so the true answer is known to the pixel and the
whole chain is checked: person box, affine crop, normalisation, the model on
torch, heatmap / SimCC decoding, and the way back to image pixels.
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
    det = create_detector("torchscript", model=model, skeleton="coco17", device="cpu", min_confidence=0.2)
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


def test_no_person_gives_no_one(tmp_path):
    det = create_detector("torchscript", model=save(BlobHeatmaps(), tmp_path / "m.pt"), device="cpu")
    out = det.detect(np.zeros((480, 640, 3), np.uint8))
    assert out.shape == (0, N_JOINTS, 3)


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        create_detector("torchscript", model=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="junk.pt: not a TorchScript file"):
        create_detector("torchscript", model=str(junk))
    wrong = save(BlobHeatmaps(), tmp_path / "wrong.pt")
    det = create_detector("torchscript", model=wrong, skeleton="halpe26", device="cpu")
    with pytest.raises(DetectorError, match="expected heatmaps"):
        det.detect(blob_image(CENTRES))
