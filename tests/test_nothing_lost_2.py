"""Nothing lost, part two (issue 36): outputs stay in their folder, exports never overwrite what they read, an output
folder belongs to one job, converters keep the downloads' names inside ``--out``, configs are strict, the val split
is checked before work, and every image is decoded faithfully or refused in one line naming the file.

Each mistake gives one ``error:`` line (exit status 2) before any work, and the data it would have harmed is
compared byte for byte afterwards.
"""
from __future__ import annotations

import errno
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slrnet.checkpoint import save_checkpoint
from slrnet.cli import main
from slrnet.config import ConfigError, load_config, merge_overrides, save_config
from slrnet.data.files import DatasetError, load_image
from slrnet.models import build_model


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def one_error_line(rc: int, err: str, *expected: str) -> None:
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (links not followed) -> its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def data(tmp_path, tiny_root) -> Path:
    """A private copy of the tiny shapes root, read as a plain VOC-layout root (nothing regenerates it)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    return root


@pytest.fixture
def job(tmp_path, data, tiny_cfg):
    """(config file, checkpoint A, checkpoint B): two tiny 7-class models (different seeds) and their config."""
    cfg = tiny_cfg(data, **{"dataset.name": "voc", "dataset.generate": None, "misc.log_dir": str(tmp_path / "logs")})
    config = tmp_path / "tiny.yaml"
    save_config(cfg, config)
    paths = []
    for seed in (0, 1):
        import torch

        torch.manual_seed(seed)
        path = tmp_path / f"model_{seed}.pth"
        save_checkpoint(path, {"state_dict": build_model(cfg["model"]).state_dict()})
        paths.append(path)
    return config, paths[0], paths[1]


def export_argv(job, data, output, *extra, checkpoint=1):
    config, *ckpts = job
    return ["export", "--config", config, "--checkpoint", ckpts[checkpoint - 1], "--data_root", data,
            "--output", output, "--apply_crf", "0", "--device", "cpu", "--num_workers", "1", "--max_images", "3",
            *extra]


def infer_argv(job, data, output, *extra, checkpoint=1):
    config, *ckpts = job
    return ["infer", "--config", config, "--checkpoint", ckpts[checkpoint - 1], "--data_root", data,
            "--output", output, "--apply_crf", "0", "--device", "cpu", "--num_workers", "1", *extra]


# ---------------------------------------------------------------- 1. every path stays inside its folder
def test_export_mask_dir_into_the_dataset_is_refused(tmp_path, data, job, capsys):
    before = snapshot(data)
    rc, err = run_cli(export_argv(job, data, tmp_path / "out", "--mask_dir", data / "SegmentationClass"), capsys)
    one_error_line(rc, err, "--mask_dir", "no '..', not an absolute path")
    assert snapshot(data) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--mask_dir", "../../x"), ("--list_name", "../../../../y.txt"),
                                         ("--list_name", "/tmp/y.txt")])
def test_export_names_that_climb_out_are_refused(tmp_path, data, job, capsys, flag, value):
    out = tmp_path / "a" / "b" / "out"
    rc, err = run_cli(export_argv(job, data, out, flag, value), capsys)
    one_error_line(rc, err, flag, repr(value))
    assert not (tmp_path / "a").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("where, relation", [("root", "is"), ("inside", "lies inside"), ("parent", "contains"),
                                             ("link", "is")])
def test_export_output_may_not_be_in_or_around_the_data_root(tmp_path, data, job, capsys, where, relation):
    output = {"root": data, "inside": data / "pseudo", "parent": tmp_path, "link": tmp_path / "link"}[where]
    if where == "link":
        output.symlink_to(data, target_is_directory=True)
    before = snapshot(data)
    rc, err = run_cli(export_argv(job, data, output, "--list_name", "val.txt"), capsys)
    one_error_line(rc, err, f"{relation} the data root")
    assert snapshot(data) == before and not (data / "SegmentationClassAug").exists()
    assert not (data / "pseudo").exists()


def test_infer_output_may_not_be_the_data_root(data, job, capsys):
    before = snapshot(data)
    rc, err = run_cli(infer_argv(job, data, data / "predictions"), capsys)
    one_error_line(rc, err, "lies inside the data root")
    assert snapshot(data) == before and not (data / "predictions").exists()


def test_run_names_cannot_leave_the_log_dir(tmp_path, job, capsys):
    rc, err = run_cli(["train", "--config", job[0], "--run", "../../escaped"], capsys)
    one_error_line(rc, err, "--run '../../escaped'")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "logs").exists()


# ---------------------------------------------------------------- 2. an output folder belongs to one job
def test_a_second_export_of_another_checkpoint_is_refused_then_overwrites_whole(tmp_path, data, job, capsys):
    out = tmp_path / "pseudo"
    assert run_cli(export_argv(job, data, out), capsys)[0] == 0
    first = snapshot(out)
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["job"]["checkpoint"]["sha256"] and not (out / ".lock").exists()
    assert run_cli(export_argv(job, data, out), capsys)[0] == 0             # the same job again: fine
    rc, err = run_cli(export_argv(job, data, out, checkpoint=2), capsys)
    one_error_line(rc, err, "holds the results of another job", "checkpoint.sha256", "--overwrite")
    assert snapshot(out) == first                                           # untouched
    rc, err = run_cli(export_argv(job, data, out, "--max_images", "2", "--overwrite", checkpoint=2), capsys)
    assert rc == 0, err
    summary = json.loads((out / "export_summary.json").read_text())
    from slrnet.output_folder import file_sha256

    assert summary["job"]["checkpoint"]["sha256"] == file_sha256(job[2])
    assert len(list((out / "SegmentationClassAug").glob("*.png"))) == 2     # none of the first model's left


def test_infer_with_other_settings_or_unrecorded_results_is_refused(tmp_path, data, job, capsys):
    out = tmp_path / "pred"
    assert run_cli(infer_argv(job, data, out), capsys)[0] == 0
    rc, err = run_cli(infer_argv(job, data, out, "--bg_pow", "1"), capsys)
    one_error_line(rc, err, "settings.bg_pow: 3 there, 1.0 now")
    (out / "job.json").unlink()
    rc, err = run_cli(infer_argv(job, data, out), capsys)
    one_error_line(rc, err, "with no record (job.json)")
    assert run_cli(infer_argv(job, data, out, "--bg_pow", "1", "--overwrite"), capsys)[0] == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["bg_pow"] == 1.0


def test_a_live_job_holds_its_output_folder(tmp_path, data, job, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        rc, err = run_cli(infer_argv(job, data, out), capsys)
        one_error_line(rc, err, f"output folder {out} is in use by process {sleeper.pid}", "another --output folder")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not (out / "raw").exists()


def test_colliding_output_names_are_refused_before_any_work(tmp_path, data, job, capsys):
    name = (data / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    (data / "other").mkdir()
    shutil.copyfile(data / "JPEGImages" / f"{name}.jpg", data / "other" / f"{name}.jpg")
    (data / "ImageSets/Segmentation/twice_val.txt").write_text(f"/JPEGImages/{name}.jpg\n/other/{name}.jpg\n")
    out = tmp_path / "pred"
    rc, err = run_cli(infer_argv(job, data, out, "--data_list", "twice_val.txt"), capsys)
    one_error_line(rc, err, f"entries 1 and 2 share the output name '{name}'")
    assert not out.exists()


# ---------------------------------------------------------------- 3. converters keep the downloads' names inside --out
def test_sbd_list_entries_that_climb_out_are_refused(tmp_path, capsys):
    sbd, voc = tmp_path / "benchmark_RELEASE", tmp_path / "a" / "b" / "VOC2012"
    (sbd / "dataset" / "cls").mkdir(parents=True)
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (sbd / "dataset/train.txt").write_text("2008_000002\n../../../../evil\n")
    (sbd / "dataset/val.txt").write_text("")
    for split in ("train", "val"):
        (voc / f"ImageSets/Segmentation/{split}.txt").write_text("")
    rc, err = run_cli(["convert", "sbd", "--sbd-root", sbd, "--voc-root", voc], capsys)
    one_error_line(rc, err, str(sbd / "dataset/train.txt"), "'../../../../evil'")
    assert not (tmp_path / "evil.png").exists() and not (voc / "SegmentationClassAug").exists()


@pytest.mark.parametrize("file_name", ["../../outside.jpg", "/tmp/abs.jpg"])
def test_coco_file_names_that_climb_out_are_refused(tmp_path, capsys, file_name):
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "val2014").mkdir()
    Image.new("RGB", (4, 4)).save(coco / "val2014" / "ok.jpg")
    data = {"images": [{"id": 1, "file_name": "ok.jpg", "height": 4, "width": 4},
                       {"id": 2, "file_name": file_name, "height": 4, "width": 4}],
            "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    (coco / "annotations/instances_val2014.json").write_text(json.dumps(data))
    out = tmp_path / "o" / "COCO"
    rc, err = run_cli(["convert", "coco", "--coco-root", coco, "--split", "val2014", "--out", out], capsys)
    one_error_line(rc, err, "instances_val2014.json", f"file_name {file_name!r}")
    assert not out.exists() and not (tmp_path / "outside.jpg").exists()


def test_lid_list_entries_that_climb_out_are_refused(tmp_path, capsys):
    root = tmp_path / "L2ID"
    (root / "Annotations").mkdir(parents=True)
    (root / "Data").mkdir()
    Image.new("RGB", (4, 4)).save(root / "Data" / "n1_1.JPEG", format="JPEG")
    from slrnet.data.convert_lid import L2ID_CLASSES

    labels = {"files": ["n1_1"], "labels": np.zeros((1, len(L2ID_CLASSES) - 1), np.float32)}
    np.save(root / "Annotations" / "cls_labels.npy", labels, allow_pickle=True)
    (root / "val.txt").write_text("../../../escaped\n")
    out = tmp_path / "o" / "LID"
    rc, err = run_cli(["convert", "lid", "--lid-root", root, "--out", out], capsys)
    one_error_line(rc, err, str(root / "val.txt"), "'../../../escaped'")
    assert not out.exists() and not (tmp_path / "escaped.jpg").exists()


# ---------------------------------------------------------------- 4. strict configs, finite numbers in range
@pytest.mark.parametrize("text, expected", [
    ("train:\n  lr: 0.01\nmodel:\n  num_classes: 7\ntrain:\n  num_epochs: 2\n", "the key 'train' is given twice"),
    ("train:\n  lr: 0.01\n  lr: 0.02\n", "line 3: the key 'lr' is given twice (first on line 2)"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("misc:\n  log_freq: 0\n", "misc.log_freq = 0; expected at least 1"),
    ("train:\n  lr: .inf\n", "train.lr: expected a finite number"),
    ("train:\n  lr: .nan\n", "train.lr: expected a finite number"),
    ("train:\n  batch_size: 1e400\n", "train.batch_size: expected a finite number"),
    ("misc:\n  seed: 100000000000000000000\n", "misc.seed: expected a finite number of magnitude below 2**63"),
    ("test:\n  scales: [1, .inf]\n", "test.scales[1]: expected a finite number"),
])
def test_config_files_are_strict(tmp_path, capsys, text, expected):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="^" + str(config).replace("\\", "\\\\") + ".*"):
        load_config(config)
    rc, err = run_cli(["train", "--config", config, "--run", "x"], capsys)
    one_error_line(rc, err, expected)


def test_a_non_utf8_config_is_named(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    text = "misc:\n  log_dir: caf\u00e9\n".encode("latin-1")
    config.write_bytes(text)
    rc, err = run_cli(["train", "--config", config, "--run", "x"], capsys)
    one_error_line(rc, err, f"config {config} is not UTF-8 text (byte {text.index(0xe9)} is 0xe9)")


@pytest.mark.parametrize("override, expected", [
    ("misc.log_freq=0", "misc.log_freq = 0; expected at least 1"), ("train.lr=inf", "expected a finite number"),
    ("train.lr=.nan", "expected a finite number"), ("train.num_epochs=1e999", "expected a finite number"),
    ("model.temperature=0", "model.temperature = 0.0; expected a positive number"),
])
def test_overrides_are_finite_and_in_range(override, expected, job, capsys):
    with pytest.raises(ConfigError, match="override"):
        merge_overrides(load_config(job[0]), [override])
    rc, err = run_cli(["train", "--config", job[0], "--run", "x", override], capsys)
    one_error_line(rc, err, expected)


def test_test_time_flags_are_finite_and_counts_not_negative(tmp_path, data, job, capsys):
    rc, err = run_cli(infer_argv(job, data, tmp_path / "o", "--bg_pow", "inf"), capsys)
    one_error_line(rc, err, "test.bg_pow: expected a positive, finite power")
    rc, err = run_cli(infer_argv(job, data, tmp_path / "o", "--scales", "1,nan"), capsys)
    one_error_line(rc, err, "test.scales")
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in infer_argv(job, data, tmp_path / "o", "--max_images", "-1")])
    assert info.value.code == 2 and "--max_images: expected a whole number, 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_mps_on_a_machine_without_it_is_one_line(tmp_path, data, job, capsys):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    rc, err = run_cli(infer_argv(job, data, tmp_path / "o")[:-4] + ["--device", "mps"], capsys)
    one_error_line(rc, err, "MPS (Apple GPU) is not available")
    rc, err = run_cli(["train", "--config", job[0], "--run", "m", "--device", "mps"], capsys)
    one_error_line(rc, err, "MPS (Apple GPU) is not available")


# ---------------------------------------------------------------- 5. checks before work, advice that works
def test_a_corrupt_val_image_stops_the_start_not_the_first_epoch(tmp_path, data, job, capsys):
    name = (data / "ImageSets/Segmentation/val.txt").read_text().split()[-1]
    image = data / "JPEGImages" / f"{name}.jpg"
    image.write_bytes(image.read_bytes()[:200])                              # cut short
    rc, err = run_cli(["train", "--config", job[0], "--run", "v"], capsys)
    one_error_line(rc, err, "found before training", str(image))
    assert "--resume" not in err
    assert not (tmp_path / "logs" / "tiny" / "v").exists()                 # no run left behind to resume


def test_no_advice_to_resume_without_a_checkpoint(tmp_path):
    from slrnet.checkpoint import _write_error
    from slrnet.errors import RunFolderInUse
    from slrnet.run_folder import RunFolder

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    with pytest.raises(RunFolderInUse) as info:
        RunFolder(run).claim()
    assert "--resume" not in str(info.value) and "--overwrite" in str(info.value)
    full = OSError(errno.ENOSPC, "No space left on device")
    message = str(_write_error(run / "checkpoints" / "last.pth", full))
    assert "--resume" not in message and "no checkpoint had been written yet" in message
    (run / "checkpoints" / "last.pth").write_bytes(b"x")
    assert "--resume" in str(_write_error(run / "checkpoints" / "best.pth", full))
    with pytest.raises(RunFolderInUse, match="pass --resume to continue it"):
        RunFolder(run).claim()


# ---------------------------------------------------------------- 6. images decoded faithfully or refused
def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (1, 4, 3) and rgb[..., 0].tolist() == [[0, 1, 128, 255]]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)                                           # opaque: kept
    rgba[0, 1] = (0, 0, 0, 0)                                                # transparent black: white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.asarray(load_image(tmp_path / "a.png")).tolist() == [[[10, 20, 30], [255, 255, 255]]]
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.save(tmp_path / "p.png", transparency=0)                         # index 0 transparent
    assert np.asarray(load_image(tmp_path / "p.png")).tolist() == [[[255, 255, 255], [200, 0, 0]]]


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "white.jpg", quality=100)
    Image.new("CMYK", (8, 8), (0, 0, 0, 255)).save(tmp_path / "black.jpg", quality=100)
    assert np.abs(np.asarray(load_image(tmp_path / "white.jpg")).astype(int) - 255).max() <= 2
    assert np.asarray(load_image(tmp_path / "black.jpg")).max() <= 2


def test_exif_orientation_upright_or_as_the_mask_says(tmp_path):
    stored = np.zeros((2, 4, 3), np.uint8)
    stored[0, 0] = 255                                                       # a white top-left pixel
    exif = Image.Exif()
    exif[0x0112] = 6                                                         # rotate 90 degrees clockwise to view
    Image.fromarray(stored).save(tmp_path / "r.png", exif=exif)
    upright = load_image(tmp_path / "r.png")
    assert upright.size == (2, 4) and np.asarray(upright)[0, 1].tolist() == [255, 255, 255]
    from PIL import ImageOps

    assert ImageOps.exif_transpose(upright).size == (2, 4)                  # turned once, not twice
    assert load_image(tmp_path / "r.png", mask_size=(4, 2)).size == (4, 2)   # the mask was drawn on the stored pixels
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / "sq.png", exif=exif)
    with pytest.raises(DatasetError, match=r"sq.png has EXIF orientation 6.*cannot tell"):
        load_image(tmp_path / "sq.png", mask_size=(3, 3))


def test_decompression_bombs_are_refused_in_one_line(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "bomb.png")
    for limit in (1000, 500):                                               # PIL's warning, then its error
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(DatasetError, match=r"bomb.png is refused as a possible decompression bomb") as info:
            load_image(tmp_path / "bomb.png")
        assert "\n" not in str(info.value) and "MAX_IMAGE_PIXELS" in str(info.value)


# ---------------------------------------------------------------- writes that fail leave nothing half-written
def test_a_full_disk_during_infer_names_the_file_and_leaves_no_partial_one(tmp_path, data, job, capsys,
                                                                           monkeypatch):
    import os

    import slrnet.utils

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file an fsync is for")
    pngs = []
    real_fsync = os.fsync

    def fsync(fd):
        if ".png." in os.readlink(f"/proc/self/fd/{fd}"):
            pngs.append(fd)
        if len(pngs) >= 2:                                   # the first PNG fits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(slrnet.utils.os, "fsync", fsync)
    out = tmp_path / "pred"
    rc, err = run_cli(infer_argv(job, data, out), capsys)
    one_error_line(rc, err, f"writing {out / 'raw'}", "No space left on device", "no partial file was left")
    files = sorted(p.name for p in (out / "raw").iterdir())
    assert len(files) == 1 and not any(name.endswith(".tmp") for name in os.listdir(out / "raw"))
    Image.open(out / "raw" / files[0]).load()                # the one written is complete


def test_a_list_in_another_encoding_is_named(tmp_path, data, job, capsys):
    text = "val_000000\ncaf\u00e9\n".encode("latin-1")
    (data / "ImageSets/Segmentation/latin_val.txt").write_bytes(text)
    rc, err = run_cli(infer_argv(job, data, tmp_path / "o", "--data_list", "latin_val.txt"), capsys)
    one_error_line(rc, err, "latin_val.txt is not UTF-8 text", f"byte {text.index(0xe9)} is 0xe9")


def test_a_checkpoint_refuses_a_config_of_another_variant(tmp_path, tiny_root, tiny_cfg):
    """A checkpoint that holds its config (as Trainer saves it) is not read under another variant's config."""
    from slrnet.checkpoint import save_checkpoint
    from slrnet.config import merge_overrides
    from slrnet.models import build_model
    from slrnet.models.loading import load_trained_model

    cfg = merge_overrides(tiny_cfg(tiny_root), {"model.name": "slrnet_semi", "model.num_classes": 7})
    save_checkpoint(tmp_path / "semi.pth", {"state_dict": build_model(cfg["model"]).state_dict(), "config": cfg})
    model, _ = load_trained_model(tmp_path / "semi.pth", cfg)              # its own config: fine
    assert model.takes_pixel_labels
    weak = merge_overrides(cfg, {"model.name": "slrnet"})
    with pytest.raises(ValueError, match="trained with model.name = 'slrnet_semi'"):
        load_trained_model(tmp_path / "semi.pth", weak)


@pytest.mark.parametrize("value, fragment", [("ten", "expects int"), ("nan", "expects float"), ("1.5", "expects int")])
def test_notebook_parameters_are_type_checked_before_any_run(value, fragment, tmp_path, capsys):
    """``-p KEY VALUE`` must have the type of the notebook's declared default; refused before any notebook runs."""
    import nbformat

    from slrnet.cli import main

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('output_dir = "out"\nprofile = "quick"\nnum_samples = 1000\nlr = 0.1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell("print(num_samples)")]
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(nb, folder / "00_tiny.ipynb")
    key = "lr" if fragment == "expects float" else "num_samples"
    value = "float('nan')" if value == "nan" else value
    rc = main(["suite", "--notebooks-dir", str(folder), "--output-root", str(tmp_path / "o"), "-p", key, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and fragment in err[0] and not (tmp_path / "o").exists()
