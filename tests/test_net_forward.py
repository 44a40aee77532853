"""The whole network against the authors' ``Net`` (``fixtures/net_forward.npz``, README section 11), float64.

The official WideResNet-38 SLRNet with seeded weights is saved as an official training checkpoint and loaded
through ``slrnet.models.loading.load_trained_model`` (what ``infer --checkpoint`` and ``export`` use), with the VOC weakly
supervised config. Eval outputs must agree to 1e-10; training losses, PAMR-refined masks and every trainable
parameter's gradient at the README's float64 tolerance (atol = rtol = 1e-10); pseudo labels exactly.
This is the guard for any refactor of the model: a changed tap, head or loss order shows up here.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from net_reference import CONFIG, load_reference, model_config, save_official_checkpoint, subsample_grad
from slrnet.checkpoint import load_state_dict_strict
from slrnet.models.loading import load_trained_model
from slrnet.models import build_model

TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def official_state(official_net_state):
    assert len(official_net_state) == 449            # every official key, the 128 aliases included
    return official_net_state


@pytest.fixture(scope="module")
def model(official_state, tmp_path_factory):
    path = save_official_checkpoint(official_state, tmp_path_factory.mktemp("ckpt") / "official.pth")
    net, _ = load_trained_model(path, CONFIG, dtype=torch.float64)
    path.unlink()                       # 1.1 GB of float64
    return net


def eval_outputs(net, x: torch.Tensor) -> dict[str, np.ndarray]:
    net.eval()
    with torch.no_grad():
        feats = net.backbone(x)
        single = net.predict(x)
        twoview = net.predict(x, multi_view=True)
        return {"backbone_conv3_ch8": feats["shallow"][:, ::8].numpy(),
                "backbone_conv6_ch64": feats["deep"][:, ::64].numpy(),
                "decoder_features_ch8": net.features(x)[0][:, ::8].numpy(),
                "single_scores": single["scores"].numpy(),
                "single_masks_s2": single["masks"][:, :, ::2, ::2].numpy(),
                "twoview_scores": twoview["scores"].numpy(),
                "twoview_masks_s2": twoview["masks"][:, :, ::2, ::2].numpy()}


def test_eval_forward_matches_official_net(model, reference):
    x = torch.from_numpy(reference["x"])
    # the input is the ImageNet normalisation of the stored image
    from slrnet.data.transforms import MEAN, STD
    expected_x = (reference["image_uint8"].transpose(0, 3, 1, 2) / 255.0 - np.reshape(MEAN, (1, 3, 1, 1))) \
        / np.reshape(STD, (1, 3, 1, 1))
    np.testing.assert_allclose(reference["x"], expected_x, rtol=0, atol=1e-12)
    for key, value in eval_outputs(model, x).items():
        np.testing.assert_allclose(value, reference[key], err_msg=key, rtol=0, atol=1e-10)


def test_official_checkpoint_with_module_prefix_loads_and_forwards_identically(model, official_state, reference):
    """DataParallel / DDP checkpoints carry ``module.`` on every key: strict load, bit-identical weights."""
    wrapped = {"module." + k: v for k, v in official_state.items()}
    twin = build_model({**model_config(), "pretrained": ""}).double()
    report = load_state_dict_strict(twin, {"state_dict": wrapped}, source="module.-prefixed checkpoint")
    assert report.ok and not report.unexpected and not report.missing
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k          # every tensor bit-equal: the forward is the tested one


def test_training_forward_losses_pseudo_labels_and_gradients(model, reference):
    """Training mode as the fixture ran it: every dropout at p = 0, the Stochastic Gate deterministic."""
    model.train()
    dropouts = [m for m in model.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d))]
    assert dropouts, "the network has dropout layers (ASPP, heads, b6/b7)"
    saved_p = [m.p for m in dropouts]
    for m in dropouts:
        m.p = 0.0
    model.sg.eval()
    model.zero_grad(set_to_none=True)
    try:
        out = model(torch.from_numpy(reference["x"]), torch.from_numpy(reference["train_labels"]))
        losses = out["losses"]
        total = losses["cls"] + 4 * losses["mask"] + 4 * losses["code"] + losses["seg"]
        total.backward()
    finally:
        for m, p in zip(dropouts, saved_p):
            m.p = p
        model.eval()

    np.testing.assert_allclose(losses["cls"].detach().numpy()[None], reference["train_cls_loss"], **TOL)
    np.testing.assert_allclose(losses["seg_per_image"].detach().numpy(), reference["train_seg_loss"], **TOL)
    np.testing.assert_allclose(losses["mask"].detach().numpy()[None], reference["train_mask_loss"], **TOL)
    np.testing.assert_allclose(losses["code"].detach().numpy()[None], reference["train_code_loss"], **TOL)
    np.testing.assert_allclose(total.detach().numpy(), reference["train_total"], **TOL)
    assert np.array_equal(out["maps"]["pseudo_gt"].numpy().astype(np.uint8), reference["train_pseudo_gt"])
    np.testing.assert_allclose(out["maps"]["refined"][:, :, ::2, ::2].numpy(), reference["train_refined_s2"], **TOL)

    params = dict(model.named_parameters())
    trainable = sorted(k for k, p in params.items() if p.requires_grad)
    stored = sorted(k[len("grad__"):] for k in reference if k.startswith("grad__"))
    assert trainable == stored               # the frozen stem, b2 blocks and backbone BNs have none
    for key in stored:
        np.testing.assert_allclose(subsample_grad(params[key].grad), reference["grad__" + key], err_msg=key, **TOL)


def test_checkpoint_diagnostics_of_the_official_network(model, reference):
    """The factor diagnostics notebook 04 prints run on a network loaded from an official-format checkpoint (the
    released VOC architecture, 21 classes) and read the same quantities as for the suite's models."""
    from slrnet.analysis.factors import checkpoint_diagnostics

    x = torch.from_numpy(reference["x"])[:1]                                    # (1, 3, H, W)
    mask = torch.zeros(x.shape[-2:], dtype=torch.long)
    mask[: x.shape[-2] // 2] = 15                                               # a person above the background
    d = checkpoint_diagnostics(model, [{"image": x[0], "mask": mask}], indices=[0])
    assert d["num_atoms"] == 21 and d["images"] == [0]
    assert 1 / 21 - 1e-9 <= d["code_top"] <= 1 and -1 <= d["atom_cos"] <= 1 and -1 <= d["init_atom_cos"] <= 1
    assert d["purity_single_atom"] <= d["purity"] <= 1 and 1 <= d["effective_rank_reconstruction"] <= 21
