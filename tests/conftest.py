"""Shared test set-up: quiet, headless, small.

* ``SLRNET_NO_PROGRESS=1`` silences progress bars, ``MPLBACKEND=Agg`` keeps matplotlib off any display;
  both are set before anything imports matplotlib and are inherited by papermill kernels.
* ``torch.set_num_threads(1)``: tiny tensors gain nothing from a second thread, and two threads on a
  busy 2-core machine thrash (measured 10-15x slower under load).
* ``output_root``: a fresh temporary folder for notebook / run outputs.
* ``tiny_root`` / ``tiny_cfg``: one small generated shapes set per session and the config of a tiny training on it,
  shared by the trainer tests.
"""
import os

os.environ["SLRNET_NO_PROGRESS"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("OMP_NUM_THREADS", "1")   # also for the papermill kernels the notebook tests start

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_DATA = {"num_train": 24, "num_val": 4, "image_size": 48}


def make_tiny_cfg(root, **over) -> dict:
    """A validated config training a tiny network on the set at ``root`` (made by ``tiny_root``); ``over`` are
    dotted overrides (``{"train.num_epochs": 3}``)."""
    from slrnet.config import merge_overrides, validate

    cfg = validate({
        "misc": {"seed": 3, "verbose": 0, "log_freq": 1, "num_snapshots": 2, "device": "cpu"},
        "train": {"lr": 0.01, "num_epochs": 2, "pretrain_epochs": 0, "batch_size": 4, "num_workers": 0,
                  "lr_multipliers": [1, 1, 1, 1], "max_steps_per_epoch": 2},
        # the options tiny_root was made with: other options would make the trainer generate the default dataset
        "dataset": {"name": "shapes", "root": str(root), "crop_size": 40, "generate": dict(TINY_DATA)},
        "model": {"backbone": "tiny", "num_classes": 7, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
                  "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2]},
        "test": {"scales": [1.0]},
    })
    return merge_overrides(cfg, over)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A generated shapes set of 24 training and 4 val images of 48 px (every training image has its mask)."""
    from slrnet.data import ensure_default_dataset

    return ensure_default_dataset(tmp_path_factory.mktemp("data") / "shapes", **TINY_DATA)


@pytest.fixture
def tiny_cfg():
    """``make_tiny_cfg(root, **overrides)``: the config of a tiny training on ``tiny_root``."""
    return make_tiny_cfg


@pytest.fixture
def output_root(tmp_path: Path) -> Path:
    """An empty, absolute output root (``<tmp>/outputs``) in place of the repository's ``outputs/``."""
    root = tmp_path / "outputs"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def official_net_state():
    """The official WideResNet-38 Net's state_dict (449 keys, float64) from the seeded formula of
    ``fixtures/net_forward.npz``; built once per session (about 10 s), shared by the whole-network tests."""
    from net_reference import complete_with_model_buffers, load_reference, official_state_dict
    from slrnet.config import load_config
    from slrnet.models import build_model

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "voc_wss_resnet38.yaml")
    skeleton = build_model({**cfg["model"], "pretrained": ""})
    return complete_with_model_buffers(official_state_dict(load_reference()), skeleton)
