"""slrnet.predict: ``python -m slrnet predict --checkpoint P [--config C] IMAGE...`` on a tiny random model.

Both checkpoint kinds (a Trainer checkpoint with its config inside; an official-format one, ``module.`` keys and
no config, plus a YAML config), JPEG and PNG inputs, the files written (palette mask, overlay) beside the image
or in --output, the printed classes (scores; pixel shares for a model without class scores), and one ``error:``
line with exit status 2 for each bad input.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slrnet import cli
from slrnet.checkpoint import save_checkpoint
from slrnet.config import merge_overrides, save_config, validate
from slrnet.data.files import PALETTE, load_mask
from slrnet.data.transforms import normalize_to_tensor
from slrnet.infer import Predictor, TestConfig
from slrnet.models import build_model
from slrnet.predict import class_names_for, overlay_image, predict_image

TINY = {"name": "slrnet", "backbone": "tiny", "num_classes": 5, "decoder_channels": 16,
        "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}, "num_iters": 2}
NAMES = ["background", "cat", "dog", "car", "tree"]
CLASS_LINE = re.compile(r"^  (\w+) +(?:score (\d\.\d{3}) +)?( *\d+\.\d)% of the pixels$")


def tiny_config(root: Path, **model) -> dict:
    return validate({"model": {**TINY, **model}, "test": {"scales": [1.0]},
                     "dataset": {"name": "voc", "root": str(root)}})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random SLRNet whose head favours class 3 ("car"), saved both ways; a JPEG and a PNG image."""
    tmp = tmp_path_factory.mktemp("predict")
    root = tmp / "data"
    root.mkdir()
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    cfg = tiny_config(root)
    torch.manual_seed(0)
    model = build_model(cfg["model"]).eval()
    state = model.state_dict()
    classifier = [k for k in state if k.startswith("last_conv.") and k.endswith(".bias")][-1]
    state[classifier] = torch.tensor([-4.0, -4.0, 6.0, -4.0])          # foreground classes 1..4: 3 wins
    trainer = tmp / "run" / "checkpoints" / "best.pth"
    save_checkpoint(trainer, {"state_dict": state, "epoch": 1, "config": cfg})
    official = tmp / "official.pth"
    save_checkpoint(official, {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3,
                               "optimizer": {}})
    config = tmp / "tiny.yaml"
    save_config(cfg, config)
    images = tmp / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(images / "street.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (56, 48, 3), dtype=np.uint8)).save(images / "park.png")
    return {"tmp": tmp, "root": root, "cfg": cfg, "trainer": trainer, "official": official, "config": config,
            "jpg": images / "street.jpg", "png": images / "park.png"}


def parse(out: str) -> dict[str, list[tuple[str, float | None, float]]]:
    """Printed output -> {image name: [(class, score or None, share %), ...]}."""
    result, current = {}, None
    for line in out.splitlines():
        if not line.startswith("  "):
            current = line.split(" ", 1)[0]
            result[current] = []
            continue
        m = CLASS_LINE.match(line)
        assert m, f"unexpected line {line!r}"
        result[current].append((m[1], None if m[2] is None else float(m[2]), float(m[3])))
    return result


def check_outputs(image: Path, folder: Path, printed: list) -> None:
    mask_path, overlay_path = folder / f"{image.stem}_mask.png", folder / f"{image.stem}_overlay.png"
    with Image.open(image) as source, Image.open(mask_path) as mask_png, Image.open(overlay_path) as overlay:
        assert mask_png.mode == "P" and mask_png.getpalette()[:3 * 256] == PALETTE[:3 * 256]
        assert mask_png.size == overlay.size == source.size and overlay.mode == "RGB"
        rgb = np.asarray(source.convert("RGB"))
        overlay = np.asarray(overlay)
    mask = load_mask(mask_path)
    assert np.array_equal(overlay, overlay_image(rgb, mask))
    present = [c for c in np.unique(mask).tolist() if c != 0]
    assert sorted(NAMES[c] for c in present) == sorted(name for name, _, _ in printed)
    for name, _, share in printed:
        assert share == pytest.approx(100 * np.mean(mask == NAMES.index(name)), abs=0.051)


@pytest.mark.parametrize("kind", ["trainer", "official"])
def test_predict_writes_mask_and_overlay_beside_each_image(setup, kind, tmp_path, capsys):
    images = [tmp_path / setup["jpg"].name, tmp_path / setup["png"].name]
    for src, dst in zip((setup["jpg"], setup["png"]), images):
        dst.write_bytes(src.read_bytes())
    argv = ["predict", "--checkpoint", str(setup[kind]), *map(str, images)]
    if kind == "official":
        argv[3:3] = ["--config", str(setup["config"])]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    printed = parse(captured.out)
    assert list(printed) == ["street.jpg", "park.png"]
    assert "street.jpg (64x48): 1 class -> " in captured.out and str(tmp_path / "street_mask.png") in captured.out
    for image in images:
        check_outputs(image, tmp_path, printed[image.name])
        assert printed[image.name][0][0] == "car"            # the class the head favours, named by classes.txt
        assert printed[image.name][0][1] > 0.5                # its image-level score, sigmoid of the class score


def test_official_checkpoint_without_a_config_is_one_error_line(setup, capsys):
    assert cli.main(["predict", "--checkpoint", str(setup["official"]), str(setup["jpg"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "--config" in err and err.count("\n") == 1


def test_output_folder_scales_flip_and_crf(setup, tmp_path, capsys):
    out = tmp_path / "masks"
    argv = ["predict", "--checkpoint", str(setup["trainer"]), "--output", str(out), "--device", "auto",
            "--scales", "1,0.75", "--no-flip", "--crf", str(setup["jpg"])]
    assert cli.main(argv) == 0
    printed = parse(capsys.readouterr().out)
    check_outputs(setup["jpg"], out, printed["street.jpg"])
    assert not (setup["jpg"].parent / "street_mask.png").exists()


def test_predict_image_agrees_with_the_predictor(setup):
    from slrnet.models.loading import load_trained_model

    model, cfg = load_trained_model(setup["official"], setup["config"])
    predictor = Predictor(model, TestConfig.from_config(cfg))
    result = predict_image(predictor, setup["png"], class_names_for(cfg, model.num_classes))
    with Image.open(setup["png"]) as image:
        expected = predictor.predict(normalize_to_tensor(image.convert("RGB")))       # the val transform's input
    assert np.array_equal(result["mask"], expected.numpy()) and result["size"] == (48, 56)
    assert set(result["probabilities"]) == set(NAMES[1:]) and result["kept"] is not None
    assert [c["name"] for c in result["classes"]] == ["car"]
    assert result["background_share"] + sum(c["share"] for c in result["classes"]) == pytest.approx(1.0)


def test_a_model_without_class_scores_prints_pixel_shares(setup, tmp_path, capsys):
    cfg = tiny_config(setup["root"], name="slrnet_semi_wo_cls")
    torch.manual_seed(1)
    path = tmp_path / "semi.pth"
    save_checkpoint(path, {"state_dict": build_model(cfg["model"]).state_dict(), "config": cfg})
    assert cli.main(["predict", "--checkpoint", str(path), "--output", str(tmp_path), str(setup["png"])]) == 0
    out = capsys.readouterr().out
    printed = parse(out)["park.png"]
    assert all(score is None for _, score, _ in printed) and "score" not in out
    check_outputs(setup["png"], tmp_path, printed)


def test_class_names_sources(setup, tmp_path):
    cfg = setup["cfg"]
    assert class_names_for(cfg, 5) == NAMES                                       # the root's classes.txt
    assert class_names_for(cfg, 7) == ["background"] + [f"class_{i}" for i in range(1, 7)]   # does not fit
    shapes = merge_overrides(cfg, {"dataset.name": "shapes", "dataset.root": str(tmp_path / "none")})
    assert class_names_for(shapes, 7)[1:3] == ["circle", "square"]               # the generator's, not generated
    assert not (tmp_path / "none").exists()
    (tmp_path / "c.txt").write_text("bg\na\nb\n")
    with pytest.raises(ValueError, match="names 3 classes but the model predicts 5"):
        class_names_for(cfg, 5, tmp_path / "c.txt")


def test_exif_orientation_is_applied(setup, tmp_path, capsys):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6                                                               # rotate 90 degrees to view
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert cli.main(["predict", "--checkpoint", str(setup["trainer"]), str(tmp_path / "phone.jpg")]) == 0
    assert "phone.jpg (48x64)" in capsys.readouterr().out
    assert load_mask(tmp_path / "phone_mask.png").shape == (64, 48)


def one_error(capsys, *expected: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return captured.out


def test_bad_inputs_are_one_error_line_each(setup, tmp_path, capsys):
    ckpt = str(setup["trainer"])
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "fake.jpg").write_bytes(b"\x00" * 100)
    cases = {str(tmp_path / "notes.txt"): "is not an image",
             str(tmp_path / "fake.jpg"): "is not an image",
             str(tmp_path / "missing.png"): "image not found",
             str(tmp_path): "is a directory"}
    for path, message in cases.items():
        assert cli.main(["predict", "--checkpoint", ckpt, path]) == 2
        assert one_error(capsys, message, path) == ""
    # a truncated JPEG: recognised by its header, refused when decoded
    data = setup["jpg"].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    assert cli.main(["predict", "--checkpoint", ckpt, str(tmp_path / "cut.jpg")]) == 2
    one_error(capsys, "cut.jpg", "truncated")
    # a bad image among good ones: one line for it, the others are still predicted
    good = tmp_path / "good.png"
    good.write_bytes(setup["png"].read_bytes())
    assert cli.main(["predict", "--checkpoint", ckpt, str(tmp_path / "missing.png"), str(good)]) == 2
    assert "good.png (48x56)" in one_error(capsys, "missing.png")
    assert (tmp_path / "good_mask.png").is_file()


def test_a_checkpoint_of_another_class_count_is_one_error_line(setup, tmp_path, capsys):
    cfg7 = merge_overrides(setup["cfg"], {"model.num_classes": 7})
    save_config(cfg7, tmp_path / "seven.yaml")
    argv = ["predict", "--checkpoint", str(setup["official"]), "--config", str(tmp_path / "seven.yaml"),
            str(setup["jpg"])]
    assert cli.main(argv) == 2
    one_error(capsys, "trained for 5 classes", "model.num_classes is 7")
    assert not (setup["jpg"].parent / "street_mask.png").exists()


def test_other_bad_checkpoints_and_outputs(setup, tmp_path, capsys):
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "none.pth"), str(setup["jpg"])]) == 2
    one_error(capsys, "checkpoint file not found")
    not_torch = tmp_path / "x.pth"
    not_torch.write_text("hello")
    assert cli.main(["predict", "--checkpoint", str(not_torch), str(setup["jpg"])]) == 2
    one_error(capsys, "is not a PyTorch checkpoint")
    # two images that would write the same outputs, and an output over an input image
    other = tmp_path / "b"
    other.mkdir()
    (other / "street.png").write_bytes(setup["png"].read_bytes())
    argv = ["predict", "--checkpoint", str(setup["trainer"]), "--output", str(tmp_path / "o"), str(setup["jpg"]),
            str(other / "street.png")]
    assert cli.main(argv) == 2
    assert "street.jpg" in one_error(capsys, "street.png", "also")
    (other / "street_mask.png").write_bytes(setup["png"].read_bytes())
    assert cli.main(["predict", "--checkpoint", str(setup["trainer"]), str(other / "street.png"),
                     str(other / "street_mask.png")]) == 2
    one_error(capsys, "is one of the input images")
    assert (other / "street_mask.png").read_bytes() == setup["png"].read_bytes()     # the input is kept
    assert (other / "street_mask_mask.png").is_file()                               # and predicted itself
