"""Multi-scale + flip + CRF inference against the authors' ``tools/infer_voc.py`` (``fixtures/infer_ms_flip_crf.npz``).

The fixture holds what the authors' inference wrote for three small RGB images (45x61, 52x40, 38x50) with the
official WideResNet-38 ``Net`` in float32: the seeded weights of ``net_forward.npz`` with the class head's biases
shifted by ``3 + 2 * randn(20)`` (seed 2022) so that several classes compete, scales [1, 1.5, 2, 0.5, 0.75], flip,
``bg_pow`` 3, dense CRF. Three settings, each with the class-filtered probabilities handed to the CRF
(``<tag>_probs_<i>``, float32 (21, H, W)), the argmax PNG (``<tag>_pred_<i>``) and the CRF PNG (``<tag>_crf_<i>``):
``pred`` (fp_cut 0.3, top 6 classes), ``gtcls`` (the images' VOC image labels ``labels_<i>``), ``top2``
(fp_cut 0.3, top 2). ``image_<i>`` is the decoded uint8 image the authors' dataset read.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from net_reference import CONFIG, FIXTURES, model_config
from slrnet.crf import crf_argmax
from slrnet.data.transforms import normalize_to_tensor
from slrnet.infer import apply_class_filter, predict_multiscale, select_classes
from slrnet.models import build_trained_model

SETTINGS = {"pred": dict(use_labels=False, top_k=6), "gtcls": dict(use_labels=True, top_k=6),
            "top2": dict(use_labels=False, top_k=2)}


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURES / "infer_ms_flip_crf.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def official_state(official_net_state):
    state = dict(official_net_state)
    shift = 3.0 + 2.0 * torch.randn(20, generator=torch.Generator().manual_seed(2022), dtype=torch.float64)
    state["last_conv.8.bias"] = state["newly_added.5.8.bias"] = state["last_conv.8.bias"] + shift
    return state


@pytest.fixture(scope="module")
def predictions(official_state, golden):
    """Our multi-scale + flip prediction of each image, with the model in float32 as the authors ran it."""
    model = build_trained_model(model_config(), official_state).eval()
    out = []
    for i in range(len(golden["names"])):
        x = normalize_to_tensor(Image.fromarray(golden[f"image_{i}"]))
        out.append(predict_multiscale(model, x, [float(s) for s in golden["scales"]]))
    return out


@pytest.mark.parametrize("tag", sorted(SETTINGS))
def test_label_maps_equal_the_authors(tag, golden, predictions):
    setting = SETTINGS[tag]
    for i, (scores, probs) in enumerate(predictions):
        labels = torch.from_numpy(golden[f"labels_{i}"]) if setting["use_labels"] else None
        filtered = apply_class_filter(probs, select_classes(scores, labels, fp_cut=0.3, top_k=setting["top_k"]),
                                      bg_pow=3).numpy()
        expected = golden[f"{tag}_probs_{i}"]
        # float32 end to end; the summation order of the network's convolutions is the only difference
        np.testing.assert_allclose(filtered, expected, rtol=0, atol=5e-6, err_msg=f"{tag} image {i}")
        assert np.array_equal(filtered.argmax(0), golden[f"{tag}_pred_{i}"]), f"{tag} image {i}"
        crf = crf_argmax(golden[f"image_{i}"], filtered, 10)
        assert np.array_equal(crf, golden[f"{tag}_crf_{i}"]), f"{tag} CRF image {i}"


def test_the_fixture_is_not_trivial(golden):
    """Several classes are kept and predicted, and the top-2 rule drops some, so the test can fail."""
    kept = [set(np.unique(golden[f"pred_pred_{i}"])) for i in range(3)]
    assert all(len(k) >= 2 for k in kept)
    assert any(not np.array_equal(golden[f"pred_pred_{i}"], golden[f"top2_pred_{i}"]) for i in range(3))


def test_infer_cli_writes_the_authors_label_maps(official_state, golden, tmp_path):
    """``python -m slrnet infer`` end to end on a VOC folder of the fixture's images: raw and CRF PNGs."""
    from slrnet.cli import main

    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()   # the config's mask_dir
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    names = [str(n) for n in golden["names"]]
    for i, name in enumerate(names):
        Image.fromarray(golden[f"image_{i}"]).save(root / "JPEGImages" / f"{name}.png")
        Image.fromarray(golden[f"pred_pred_{i}"]).save(root / "SegmentationClassAug" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    checkpoint = tmp_path / "official.pth"
    torch.save({"state_dict": {k: v.float() for k, v in official_state.items()}, "epoch": 29}, checkpoint)
    rc = main(["infer", "--config", str(CONFIG), "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out"),
               "--data_root", str(root), "--apply_crf", "1", "--use_cls_label", "0", "--num_workers", "1",
               "--device", "cpu"])
    assert rc == 0
    for i, name in enumerate(names):
        raw = np.array(Image.open(tmp_path / "out" / "raw" / f"{name}.png"))
        crf = np.array(Image.open(tmp_path / "out" / "crf" / f"{name}.png"))
        assert np.array_equal(raw, golden[f"pred_pred_{i}"]), name
        assert np.array_equal(crf, golden[f"pred_crf_{i}"]), name
