"""SLRNet model: official key layout, released-checkpoint loading, forward passes and loss terms."""
import json
from pathlib import Path

import pytest
import torch

from slrnet.checkpoint import load_checkpoint, load_state_dict_strict, save_checkpoint
from slrnet.models import build_model

FIXTURES = Path(__file__).parent / "fixtures"
TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}, "pamr_iter": 3, "pamr_dilations": [1, 2]}


@pytest.fixture(scope="module")
def reference_keys():
    return json.loads((FIXTURES / "resnet38d_keys.json").read_text())


def _meta_model(**kw):
    with torch.device("meta"):
        return build_model({"backbone": "resnet38", "num_classes": 21, **kw})


def test_resnet38_slrnet_matches_the_official_key_layout(reference_keys):
    net = _meta_model()
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    ref = {r["key"]: r["shape"] for r in reference_keys["net_state_dict"]}
    assert sorted(set(ref) - set(ours)) == [] and sorted(set(ours) - set(ref)) == []
    assert ours == ref
    unique = {id(p): p.numel() for p in net.parameters()}
    assert sum(unique.values()) == reference_keys["num_params_net"]


def test_semi_wo_cls_head_predicts_the_background(reference_keys):
    net = _meta_model(name="slrnet_semi_wo_cls")
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    for row in reference_keys["semi_wo_cls_net_keys_differing_from_net"]:
        assert shapes[row["key"]] == row["shape"]


def test_released_checkpoint_format_loads_strictly_and_safely(tmp_path, reference_keys):
    """{'state_dict', 'epoch', 'optimizer'} from a DataParallel model, every alias included."""
    torch.manual_seed(0)
    tensors = {}
    state = {}
    for row in reference_keys["net_state_dict"]:
        src = row.get("alias_of")
        if src:                           # aliases hold the same tensor, as torch.save wrote them
            state["module." + row["key"]] = tensors[src]
            continue
        dtype = torch.int64 if row["dtype"] == "int64" else torch.float32
        t = torch.randint(0, 9, row["shape"], dtype=dtype) if dtype == torch.int64 else torch.randn(row["shape"])
        tensors[row["key"]] = t
        state["module." + row["key"]] = t
    path = tmp_path / "released.pth.tar"
    save_checkpoint(path, {"state_dict": state, "epoch": 29, "optimizer": {"state": {}, "param_groups": []}})
    del state, tensors
    ckpt = load_checkpoint(path)                                  # weights_only=True by default
    net = build_model({"backbone": "resnet38", "num_classes": 21})
    load_state_dict_strict(net, ckpt["state_dict"])
    w = net.state_dict()
    assert torch.equal(w["aspp.conv1.weight"], ckpt["state_dict"]["module.aspp.conv1.weight"])
    assert torch.equal(w["newly_added.6.transform1.weight"], w["factorization_reconstruction.transform1.weight"])
    # a wrong shape is named
    bad = dict(ckpt["state_dict"])
    bad["module.last_conv.8.weight"] = torch.zeros(3, 256, 1, 1)
    with pytest.raises(Exception, match="last_conv.8.weight"):
        load_state_dict_strict(net, bad)


@pytest.fixture
def tiny_batch():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 48, 48)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    return images, labels


def test_forward_returns_every_loss_term_and_gradients_reach_all_trainable_parameters(tiny_batch):
    images, labels = tiny_batch
    net = build_model(TINY)
    out = net(images, labels)
    losses = out["losses"]
    assert {"cls", "mask", "code", "seg"} <= set(losses)
    for k in ("cls", "mask", "code", "seg"):
        assert losses[k].dim() == 0 and torch.isfinite(losses[k])
    total = losses["cls"] + 4 * losses["mask"] + 4 * losses["code"] + losses["seg"]
    total.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert out["maps"]["pseudo_gt"].shape == (2, 5, 48, 48)
    # absent classes never enter the pseudo label
    present = out["maps"]["pseudo_gt"].flatten(2).sum(-1)[:, 1:] > 0
    assert not (present & (labels == 0)).any()


@pytest.mark.parametrize("use_cvlr", [True, False])
def test_pretraining_steps_without_pseudo_labels_train_the_same_bits(tiny_batch, use_cvlr):
    """The trainer's pretraining epochs skip PAMR and the seg loss they do not add: the same weights, BN
    statistics and random state as computing them and leaving them out."""
    images, labels = tiny_batch
    states = []
    for seg_loss in (True, False):
        torch.manual_seed(1)
        net = build_model({**TINY, "use_cvlr": use_cvlr})
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        for _ in range(3):
            out = net(images, labels, seg_loss=seg_loss)
            assert ("seg" in out["losses"]) == seg_loss and ("pseudo_gt" in out["maps"]) == seg_loss
            loss = out["losses"]["cls"] + 4 * out["losses"]["mask"] + 4 * out["losses"]["code"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        states.append(({k: v.clone() for k, v in net.state_dict().items()}, torch.get_rng_state()))
    (with_seg, rng_a), (without, rng_b) = states
    assert all(torch.equal(with_seg[k], without[k]) for k in with_seg) and torch.equal(rng_a, rng_b)


def test_predict_single_and_multi_view(tiny_batch):
    images, _ = tiny_batch
    net = build_model(TINY).eval()
    for mv in (False, True):
        out = net.predict(images, multi_view=mv)
        assert out["masks"].shape == (2, 5, 48, 48) and out["scores"].shape == (2, 4)
        torch.testing.assert_close(out["masks"].sum(1), torch.ones(2, 48, 48))


def test_second_view_inverse_undoes_resize_and_flip():
    net = build_model({**TINY, "use_flip": True})
    torch.manual_seed(3)
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8).repeat(1, 3, 1, 1)
    view, inverse, flipped = net.second_view(x)
    assert view.shape[-2:] == (4, 4) and flipped.shape == (2,) and flipped.dtype == torch.bool
    for i in range(2):       # the view says which way it went
        small = torch.nn.functional.interpolate(x[i:i + 1], size=(4, 4), mode="bilinear", align_corners=True)
        assert torch.equal(view[i:i + 1], small.flip(-1) if flipped[i] else small)
    assert build_model({**TINY, "use_flip": False}).second_view(x)[2] is None
    back = inverse(view, (8, 8))
    # resize down/up is smooth, the flip must be undone: left-right order is preserved
    assert (back[..., :, -1] > back[..., :, 0]).all()


def test_use_cvlr_false_is_the_single_stage_baseline(tiny_batch):
    images, labels = tiny_batch
    net = build_model({**TINY, "use_cvlr": False})
    assert not hasattr(net, "factorization_reconstruction") and not hasattr(net, "aux_head")
    out = net(images, labels)
    assert out["losses"]["mask"].item() == 0.0 and out["losses"]["code"].item() == 0.0
    assert torch.isfinite(out["losses"]["cls"]) and torch.isfinite(out["losses"]["seg"])


def test_parameter_groups_cover_trainable_parameters_once():
    net = build_model(TINY)
    groups = net.parameter_groups()
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat))
    assert set(flat) == {id(p) for p in net.parameters() if p.requires_grad}
    assert all(n.endswith("bias") for n, p in net.named_parameters() if id(p) in {id(q) for q in groups[3]})


def test_unknown_model_option_is_named():
    with pytest.raises(ValueError, match="bogus"):
        build_model({**TINY, "bogus": 1})
    with pytest.raises(ValueError, match="model.name"):
        build_model({**TINY, "name": "deeplab"})


def test_decoder_width_must_match_the_shallow_backbone_map():
    with pytest.raises(ValueError, match="decoder_channels"):
        build_model({"name": "slrnet", "backbone": "tiny", "num_classes": 3, "decoder_channels": 32,
                     "backbone_kwargs": {"width": 8}, "aspp_dilations": [1, 2, 3, 4]})


def test_build_trained_model_takes_every_weight_from_the_state(tmp_path):
    from slrnet.checkpoint import StateDictMismatchError
    from slrnet.models import build_trained_model

    torch.manual_seed(0)
    trained = build_model(TINY)
    cfg = {**TINY, "pretrained": str(tmp_path / "absent.pth")}       # not read: the state holds the backbone too
    model = build_trained_model(cfg, {"state_dict": trained.state_dict()}, source="run/last.pth")
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(StateDictMismatchError, match="run/last.pth"):
        build_trained_model({**TINY, "num_classes": 7}, trained.state_dict(), source="run/last.pth")
