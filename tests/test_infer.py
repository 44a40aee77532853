"""Multi-scale + flip inference, class filtering, run_inference and the ``infer`` CLI, with a dummy model."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from slrnet.crf import crf_argmax
from slrnet.data.transforms import denormalize, normalize_to_tensor
from slrnet.infer import (add_cli_arguments, apply_class_filter, cli_run, filter_classes, predict_multiscale,
                          TestConfig, run_inference, scaled_views, select_classes)
from slrnet.metrics import ConfusionMatrix

K = 4


class DummyModel(nn.Module):
    """A fixed random conv at stride 2 -> softmax masks; scores = mean foreground logits (or None)."""

    def __init__(self, num_classes=K, with_scores=True, seed=0):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(num_classes, generator=g))
        self.with_scores = with_scores

    def predict(self, images):
        assert not self.training
        logits = self.conv(F.avg_pool2d(images, 2, ceil_mode=True))          # (B, K, h, w)
        scores = logits[:, 1:].mean((2, 3)) if self.with_scores else None
        return {"scores": scores, "masks": logits.softmax(1)}


class ListDataset:
    """In-memory samples in the slrnet.data contract."""

    def __init__(self, n=3, size=(14, 18), split="val", seed=0):
        g = torch.Generator().manual_seed(seed)
        self.split, self.num_classes = split, K
        self.class_names = ("background", "cat", "dog", "cow")
        self.samples = []
        for i in range(n):
            rgb = (torch.rand(*size, 3, generator=g) * 255).to(torch.uint8).numpy()
            mask = torch.randint(0, K, size, generator=g)
            mask[0, :3] = 255
            labels = torch.zeros(K - 1)
            labels[torch.unique(mask[(mask > 0) & (mask < 255)]) - 1] = 1
            if i:
                labels[i % (K - 1)] = 0          # an image label missing: the label filter must matter
            self.samples.append({"image": normalize_to_tensor(Image.fromarray(rgb)), "mask": mask, "labels": labels,
                                 "name": f"img{i}", "has_mask": i != 1})

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


@pytest.fixture
def model():
    return DummyModel().eval()


def _manual_view(model, x, s, flip):
    H, W = x.shape[-2:]
    xs = F.interpolate(x, size=(round(H * s), round(W * s)), mode="bilinear", align_corners=True)
    if flip:
        xs = xs.flip(-1)
    out = model.predict(xs)
    m = F.interpolate(out["masks"], size=(H, W), mode="bilinear", align_corners=True)
    return out["scores"], (m.flip(-1) if flip else m)


def test_predict_multiscale_equals_manual_average(model):
    x = torch.randn(2, 3, 13, 17)
    scales = [1.0, 0.5, 1.5]
    scores, probs = predict_multiscale(model, x, scales, flip=True, resize="tensor_bilinear")
    views = [_manual_view(model, x, s, f) for s in scales for f in (False, True)]
    torch.testing.assert_close(probs, sum(v[1] for v in views) / 6, rtol=0, atol=1e-6)
    torch.testing.assert_close(scores, sum(v[0] for v in views) / 6, rtol=0, atol=1e-6)
    assert probs.shape == (2, K, 13, 17) and scores.shape == (2, K - 1)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 13, 17), rtol=0, atol=1e-5)  # still a distribution
    # one image without batch axis; single view at scale 1 is just model.predict resized
    s1, p1 = predict_multiscale(model, x[0], [1.0], flip=False, resize="tensor_bilinear")
    torch.testing.assert_close(p1, _manual_view(model, x[:1], 1.0, False)[1][0], rtol=0, atol=1e-6)
    assert s1.shape == (K - 1,)


def test_pil_bicubic_scales_resize_the_decoded_image_then_normalise(model):
    """The authors' per-scale input: PIL bicubic on the uint8 image, then ImageNet normalisation."""
    rgb = (torch.rand(13, 17, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    x = normalize_to_tensor(Image.fromarray(rgb))[None]
    assert scaled_views(x, 1.0) is x                                        # scale 1: the image itself
    for s in (0.5, 0.75, 1.5, 2.0):
        size = (round(13 * s), round(17 * s))
        expected = normalize_to_tensor(Image.fromarray(rgb).resize(size[::-1], Image.BICUBIC))
        assert torch.equal(scaled_views(x, s)[0], expected)
    bilinear = scaled_views(x, 1.5, "tensor_bilinear")
    assert bilinear.shape == (1, 3, 20, 26) and not torch.allclose(bilinear, scaled_views(x, 1.5), atol=1e-2)
    scores, probs = predict_multiscale(model, x, [1.0, 1.5], flip=False)
    views = [F.interpolate(model.predict(v)["masks"], size=(13, 17), mode="bilinear", align_corners=True)
             for v in (x, scaled_views(x, 1.5))]
    expected = (views[0] + views[1]) / 2
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="resize"):
        predict_multiscale(model, x, [1.0], resize="nearest")


def test_top_k_keeps_every_class_tied_at_the_kth_probability():
    """sigmoid saturates to 1.0 in float32: three classes tie for the top 2 and all three stay (authors' rule)."""
    scores = torch.tensor([20.0, 25.0, 30.0, 0.1, -3.0])
    assert select_classes(scores, top_k=2).tolist() == [True, True, True, False, False]
    assert select_classes(scores / 10, top_k=2).tolist() == [False, True, True, False, False]   # no tie


def test_flip_averaging_makes_the_prediction_flip_equivariant(model):
    x = torch.randn(1, 3, 12, 15)
    _, p = predict_multiscale(model, x, [1.0, 0.75])
    _, p_flipped = predict_multiscale(model, x.flip(-1), [1.0, 0.75])
    torch.testing.assert_close(p_flipped, p.flip(-1), rtol=0, atol=1e-6)
    _, p_noflip = predict_multiscale(model, x.flip(-1), [1.0, 0.75], flip=False)
    assert not torch.allclose(p_noflip, p.flip(-1), atol=1e-3)  # the conv is not symmetric by itself


def test_predict_multiscale_without_scores():
    s, p = predict_multiscale(DummyModel(with_scores=False).eval(), torch.randn(3, 8, 8), [1, 0.5])
    assert s is None and p.shape == (K, 8, 8)
    with pytest.raises(ValueError, match="at least one scale"):
        predict_multiscale(DummyModel().eval(), torch.randn(3, 8, 8), [])


def test_filter_classes_hand_computed():
    probs = torch.tensor([[[0.5, 0.2]], [[0.1, 0.3]], [[0.3, 0.1]], [[0.1, 0.4]]])   # (K=4, 1, 2)
    scores = torch.tensor([2.0, -3.0, 0.5])        # sigmoid: 0.881, 0.047, 0.622
    out = filter_classes(probs, scores, fp_cut=0.3, top_k=6, bg_pow=3)
    expected = torch.tensor([[[0.125, 0.008]], [[0.1, 0.3]], [[0.0, 0.0]], [[0.1, 0.4]]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert out.argmax(0).tolist() == [[0, 3]]
    # top-1 keeps only the best class; fp_cut 0.7 drops class 3 (0.62)
    assert select_classes(scores, top_k=1).tolist() == [True, False, False]
    assert select_classes(scores, fp_cut=0.7).tolist() == [True, False, False]
    assert select_classes(scores, fp_cut=0.0, top_k=0).tolist() == [True, True, True]
    # ground-truth labels override the scores entirely
    out = filter_classes(probs, scores, labels=torch.tensor([0.0, 1.0, 0.0]), bg_pow=1)
    torch.testing.assert_close(out, torch.tensor([[[0.5, 0.2]], [[0.0, 0.0]], [[0.3, 0.1]], [[0.0, 0.0]]]))
    # no scores (semi wo_cls variant): every class stays, only the background power applies
    out = filter_classes(probs, None, bg_pow=2)
    torch.testing.assert_close(out[1:], probs[1:])
    torch.testing.assert_close(out[0], probs[0] ** 2)
    assert torch.equal(probs[2], torch.tensor([[0.3, 0.1]]))       # the input is not modified


def test_filter_classes_batched_matches_per_sample():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(3, K, 5, 6, generator=g).softmax(1)
    scores = torch.randn(3, K - 1, generator=g) * 3
    batched = filter_classes(probs, scores, top_k=2, bg_pow=3)
    for b in range(3):
        torch.testing.assert_close(batched[b], filter_classes(probs[b], scores[b], top_k=2, bg_pow=3))
    with pytest.raises(ValueError, match="expected"):
        apply_class_filter(probs, torch.ones(3, K, dtype=torch.bool))


def _read_png(path):
    im = Image.open(path)
    assert im.mode == "P"
    assert im.getpalette()[3:6] == [128, 0, 0]          # VOC colour of class 1
    return np.array(im)


def test_run_inference_writes_pngs_and_evaluates(model, tmp_path):
    ds = ListDataset()
    scales = [1.0, 0.5]
    summary = run_inference(model, ds, tmp_path, TestConfig(scales=scales, fp_cut=0.3, bg_pow=3, apply_crf=True),
                            num_workers=1, device="cpu", save_probs=True)
    cm_raw, cm_crf = ConfusionMatrix(K), ConfusionMatrix(K)
    for s in ds.samples:
        scores, probs = predict_multiscale(model, s["image"], scales)
        filtered = filter_classes(probs, scores, fp_cut=0.3, bg_pow=3)
        raw = _read_png(tmp_path / "raw" / f"{s['name']}.png")
        np.testing.assert_array_equal(raw, filtered.argmax(0).numpy())
        crf = _read_png(tmp_path / "crf" / f"{s['name']}.png")
        np.testing.assert_array_equal(crf, crf_argmax(denormalize(s["image"]), filtered.numpy()))
        np.testing.assert_allclose(np.load(tmp_path / "probs" / f"{s['name']}.npy"), probs.numpy(), atol=1e-6)
        if s["has_mask"]:
            cm_raw.update(raw, s["mask"])
            cm_crf.update(crf, s["mask"])
    assert summary["num_images"] == 3 and summary["num_evaluated"] == 2       # sample 1 has no pixel labels
    assert summary["uses_gt_labels"] is False
    assert summary["raw"]["miou"] == pytest.approx(cm_raw.miou())
    assert summary["crf"]["miou"] == pytest.approx(cm_crf.miou())
    assert summary["raw"]["per_class"]["cat"]["gt_pixels"] == int(cm_raw.gt_pixels[1])
    assert json.loads((tmp_path / "summary.json").read_text())["raw"]["miou"] == pytest.approx(cm_raw.miou())


def test_crf_in_a_process_pool_matches_serial(model, tmp_path):
    ds = ListDataset(n=3, seed=3)
    test = TestConfig(scales=[1.0], apply_crf=True)
    run_inference(model, ds, tmp_path / "a", test, num_workers=1, device="cpu")
    run_inference(model, ds, tmp_path / "b", test, num_workers=2, device="cpu")
    for s in ds.samples:
        np.testing.assert_array_equal(_read_png(tmp_path / "a" / "crf" / f"{s['name']}.png"),
                                      _read_png(tmp_path / "b" / "crf" / f"{s['name']}.png"))


def test_ground_truth_labels_need_an_explicit_override_on_val(model, tmp_path):
    ds = ListDataset(split="val")
    with pytest.raises(ValueError, match="allow_label_leak"):
        run_inference(model, ds, tmp_path, TestConfig(scales=[1.0], use_cls_label=True), device="cpu")
    summary = run_inference(model, ds, tmp_path, TestConfig(scales=[1.0], use_cls_label=True, bg_pow=1),
                            allow_label_leak=True, device="cpu")
    assert summary["uses_gt_labels"] is True and summary["raw"]["uses_gt_labels"] is True
    for s in ds.samples:                     # only background and the image's own classes are predicted
        allowed = {0} | {c + 1 for c in torch.nonzero(s["labels"]).flatten().tolist()}
        assert set(np.unique(_read_png(tmp_path / "raw" / f"{s['name']}.png")).tolist()) <= allowed
    train = ListDataset(split="train")       # training split: legitimate, still marked
    assert run_inference(model, train, tmp_path / "t", TestConfig(scales=[1.0], use_cls_label=True),
                         device="cpu")["uses_gt_labels"] is True


def _tiny_voc(root, n=3, size=(12, 16)):
    rng = np.random.default_rng(0)
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True)
    for i in range(n):
        (root / "JPEGImages").mkdir(exist_ok=True)
        (root / "SegmentationClass").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"im{i}.jpg")
        Image.fromarray(rng.integers(0, K, size, dtype=np.uint8)).save(root / "SegmentationClass" / f"im{i}.png")
    (seg / "val.txt").write_text("".join(f"im{i}\n" for i in range(n)))
    (root / "classes.txt").write_text("background\ncat\ndog\ncow\n")


def test_infer_cli_end_to_end(tmp_path, monkeypatch, capsys):
    import slrnet.infer as infer
    from slrnet.config import validate

    _tiny_voc(tmp_path / "voc")
    cfg = validate({"model": {"num_classes": K}, "test": {"scales": [1.0], "apply_crf": False}})
    monkeypatch.setattr(infer, "load_trained_model", lambda checkpoint, config, device, **kw: (DummyModel().eval(), cfg))
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--config", "unused.yaml", "--checkpoint", "unused.pth", "--use_cls_label", "0",
                              "--output", str(out), "--data_list", "val.txt", "--data_root", str(tmp_path / "voc"),
                              "--fp_cut", "0.3", "--bg_pow", "3", "--apply_crf", "1", "--verbose", "0",
                              "--scales", "1,0.5", "--device", "cpu", "--num_workers", "1"])
    assert cli_run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["scales"] == [1.0, 0.5] and summary["settings"]["apply_crf"] is True
    assert summary["num_evaluated"] == 3 and sorted(p.name for p in (out / "crf").iterdir()) == \
        ["im0.png", "im1.png", "im2.png"]
    assert "crf: mIoU" in capsys.readouterr().out
    leak = parser.parse_args(["--config", "c", "--checkpoint", "p", "--output", str(out), "--use_cls_label", "1",
                              "--data_root", str(tmp_path / "voc"), "--data_list", "val.txt", "--device", "cpu"])
    with pytest.raises(ValueError, match="allow_label_leak"):
        cli_run(leak)
