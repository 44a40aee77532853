"""Dense CRF against the reference fixture (tests/fixtures/crf.npz, README section 9)."""
import sys
from pathlib import Path

import numpy as np
import pytest

from slrnet.crf import (crf_inference, crf_inference_label, crf_inference_many, unary_from_label_map,
                        unary_from_probs)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "crf.npz"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def test_unaries_match_exactly(ref):
    np.testing.assert_array_equal(unary_from_probs(ref["probs"]), ref["unary_probs"])
    np.testing.assert_array_equal(unary_from_probs(ref["probs_masked"]), ref["unary_probs_masked"])
    u = unary_from_label_map(ref["label_in"], int(ref["n_labels"]), float(ref["gt_prob"]))
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, ref["unary_label"])


@pytest.mark.parametrize("probs_key, out_key, argmax_key", [("probs", "crf_probs", "crf_argmax"),
                                                            ("probs_masked", "crf_probs_masked", "crf_masked_argmax")])
def test_crf_inference_matches_fixture(ref, probs_key, out_key, argmax_key):
    q = crf_inference(ref["image"], ref[probs_key], t=int(ref["t"]), scale_factor=int(ref["scale_factor"]),
                      labels=int(ref["n_labels"]))
    assert q.shape == (21, 24, 32) and q.dtype == np.float32
    np.testing.assert_allclose(q, ref[out_key], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(q.argmax(0), ref[argmax_key])
    # the CRF really changed something: the refined map differs from the unary argmax
    assert (q.argmax(0) != ref[probs_key].argmax(0)).any()


def test_crf_inference_label_matches_fixture(ref):
    out = crf_inference_label(ref["image"], ref["label_in"], t=int(ref["t"]), n_labels=int(ref["n_labels"]),
                              gt_prob=float(ref["gt_prob"]))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ref["crf_label_out"])


def test_many_images_serial_and_parallel_agree(ref):
    rng = np.random.default_rng(0)
    images = [ref["image"], np.ascontiguousarray(ref["image"][::-1]), rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)]
    small = rng.random((21, 10, 12)).astype(np.float32)
    probs = [ref["probs"], np.ascontiguousarray(ref["probs_masked"][:, ::-1]), small / small.sum(0)]
    serial = crf_inference_many(images, probs, num_workers=1)
    np.testing.assert_array_equal(serial[0], crf_inference(ref["image"], ref["probs"]))
    parallel = crf_inference_many(images, probs, num_workers=2, return_labels=True)
    for q, labels in zip(serial, parallel):
        np.testing.assert_array_equal(q.argmax(0), labels)


def test_bad_inputs_name_the_parameter(ref):
    with pytest.raises(ValueError, match="img must be uint8"):
        crf_inference(ref["image"].astype(np.float32), ref["probs"])
    with pytest.raises(ValueError, match=r"probs must be \(21, H, W\)"):
        crf_inference(ref["image"], ref["probs"][:5])
    with pytest.raises(ValueError, match="img is"):
        crf_inference(ref["image"][:10], ref["probs"])
    with pytest.raises(ValueError, match="labels must lie in"):
        crf_inference_label(ref["image"], ref["label_in"] + 30)
    with pytest.raises(ValueError, match="2 probability maps"):
        crf_inference_many([ref["image"]], [ref["probs"]] * 2)


def test_missing_library_names_the_package(ref, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)          # makes the import fail
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(ImportError, match="pip install pydensecrf2"):
        crf_inference(ref["image"], ref["probs"])
