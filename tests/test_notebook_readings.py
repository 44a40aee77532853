"""The readings notebook 00 prints: class co-occurrence and classes per image counted on a tiny constructed label
matrix, the worded reading of dataset statistics (every number in it computed, the wording following the
numbers), and how often a training crop drops a labelled class. Notebook 05's readings are tested with its
evaluation in tests/test_evaluation_report.py."""
from __future__ import annotations

import numpy as np
import pytest

from slrnet.analysis import dataset_statistics as D

# five images, three foreground classes: a alone, a + b, b alone, a + b + c, nothing
LABELS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=np.float32)


def test_cooccurrence_counts_and_conditional_shares():
    counts = D.class_cooccurrence(LABELS)
    np.testing.assert_array_equal(counts, [[3, 2, 1], [2, 3, 1], [1, 1, 1]])
    cond = D.conditional_cooccurrence(counts)
    np.testing.assert_allclose(cond, [[1, 2 / 3, 1 / 3], [2 / 3, 1, 1 / 3], [1, 1, 1]])
    assert np.isnan(D.conditional_cooccurrence([[0, 0], [0, 2]])[0]).all()       # a class in no image
    assert D.classes_per_image(LABELS) == {0: 0.2, 1: 0.4, 2: 0.2, 3: 0.2}
    assert D.classes_per_image(np.zeros((0, 3))) == {}
    with pytest.raises(ValueError, match="label matrix"):
        D.class_cooccurrence(np.zeros(3))


def _stats(labels, pixel_share, sizes) -> dict:
    names = ["background", "a", "b", "c"]
    return {"split": "train", "num_scanned": len(labels), "class_names": names,
            "labels_per_image_mean": float(labels.sum(1).mean()), "classes_per_image": D.classes_per_image(labels),
            "cooccurrence": D.class_cooccurrence(labels).tolist(), "pixel_share": pixel_share,
            "mean_object_area_fraction": sizes, "mean_foreground_fraction": 0.15}


def test_reading_words_the_numbers():
    share = {"background": 0.8, "a": 0.1, "b": 0.05, "c": 0.0, "void": 0.05}
    text = D.reading(_stats(LABELS, share, {"a": 0.12, "b": 0.04, "c": None}))
    paragraphs = text.split("\n\n")
    assert len(paragraphs) == 4
    assert "0 in 20.0 %, 1 in 40.0 %, 2 in 20.0 %, 3 in 20.0 %" in paragraphs[0] and "mean 1.40" in paragraphs[0]
    assert "Most images (60.0 %) hold one or two classes" in paragraphs[0]
    assert "20.0 % of the images hold no object" in paragraphs[0]
    assert "background 80.0 %, objects 15.0 %" in paragraphs[1] and "void 5.0 %" in paragraphs[1]
    assert "5.3 to 1" in paragraphs[1]                                   # 0.8 / 0.15
    assert "average object class 11 to 1" in paragraphs[1]              # 0.8 / (0.15 / 2 classes present)
    assert "dominated by background" in paragraphs[1] and "84.2 % of the scored pixels" in paragraphs[1]
    assert "smallest on average b (4.0 %), largest a (12.0 %)" in paragraphs[2]
    # c appears only with a and b: P(a | c) = P(b | c) = 1 > 0.9
    assert "Hard to separate" in paragraphs[3] and "c comes with a in 100.0 % of its images" in paragraphs[3]
    assert "33.3 % to 100.0 %" in paragraphs[3] and "20.0 % to 60.0 % of all images" in paragraphs[3]


def test_reading_follows_the_numbers_when_they_change():
    crowded = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [0, 1, 1]], dtype=np.float32)
    share = {"background": 0.3, "a": 0.3, "b": 0.3, "c": 0.1, "void": 0.0}
    text = D.reading(_stats(crowded, share, {"a": 0.3, "b": 0.3, "c": 0.1}))
    assert "Most images (50.0 %) hold three or more classes" in text
    assert "not dominated by background" in text and "Void" not in text
    independent = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float32)
    text = D.reading(_stats(independent, share, {"a": 0.3, "b": 0.3, "c": 0.1}), strong_pair=0.9)
    assert "No class comes with another in more than 90.0 %" in text


def test_crops_losing_labels(tiny_root):
    from slrnet.data import TrainTransform, VOCSegmentation

    ds = VOCSegmentation(tiny_root, "train")
    whole = D.crops_losing_labels(ds, range(4), TrainTransform(crop_size=24, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
                                  crops_per_image=3)
    assert whole["num_crops"] == 12 and whole["crops_losing_a_class"] == 0.0 and whole["labels_lost"] == 0.0
    tiny = TrainTransform(crop_size=24, scale=(0.01, 0.02))
    first = D.crops_losing_labels(ds, range(4), tiny, crops_per_image=5, seed=3)
    assert first == D.crops_losing_labels(ds, range(4), tiny, crops_per_image=5, seed=3)   # seeded
    assert first["crops_losing_a_class"] > 0 and tiny.generator is None                     # put back
    assert 0 < first["labels_lost"] <= 1 and first["crop_area"] == [0.01, 0.02]
