"""Shared test set-up: quiet, headless, small.

* ``SLRNET_NO_PROGRESS=1`` silences progress bars, ``MPLBACKEND=Agg`` keeps matplotlib off any display;
  both are set before anything imports matplotlib and are inherited by papermill kernels.
* ``torch.set_num_threads(1)``: tiny tensors gain nothing from a second thread, and two threads on a
  busy 2-core machine thrash (measured 10-15x slower under load).
* ``output_root``: a fresh temporary folder for notebook / run outputs.
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
