"""Table 1 architectures: exact parameter counts, feature-map shapes, FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leanecd.errors import LeanECDError
from leanecd.models import (
    BASELINE_COUNT_NOTES,
    MODEL_B_COUNT_NOTE,
    build_model,
    count_parameters,
    flops_per_sample,
    layer_table,
    mirzaee_printed_count_decomposition,
)
from leanecd.registry import MODELS


@pytest.mark.parametrize("name, expected", [("A", 80_825), ("C", 80_834), ("B", 310_265)])
def test_lean_parameter_counts_exact(name, expected):
    assert count_parameters(build_model(name)) == expected


def test_printed_counts_match_for_A_and_C_and_B_differs_by_one_prelu():
    assert count_parameters(build_model("A")) == MODELS["A"].printed_parameters
    assert count_parameters(build_model("C")) == MODELS["C"].printed_parameters
    b = build_model("B")
    diff = count_parameters(b) - MODELS["B"].printed_parameters
    assert diff == 64 == b.features.prelu2.weight.numel()
    assert "310,265" in MODEL_B_COUNT_NOTE and "310,201" in MODEL_B_COUNT_NOTE


def test_one_prelu_alpha_per_channel_after_every_conv_but_the_last():
    model = build_model("A")
    convs = [m for m in model.features if isinstance(m, nn.Conv3d)]
    prelus = [m for m in model.features if isinstance(m, nn.PReLU)]
    assert [c.out_channels for c in convs[:-1]] == [p.num_parameters for p in prelus]
    assert isinstance(model.features[-1], nn.Conv3d)  # no activation after the output conv
    assert all(c.padding == (0, 0, 0) for c in convs)


def test_model_A_feature_maps_for_51_cubed_input():
    rows = {r["layer"]: r["output_shape"] for r in layer_table(build_model("A"), (1, 51, 51, 51))}
    assert rows["features.conv1"] == (64, 24, 24, 24)
    assert rows["features.conv2"] == (32, 22, 22, 22)
    assert rows["features.conv3"] == (16, 20, 20, 20)
    assert rows["features.conv4"] == (8, 18, 18, 18)
    assert rows["features.conv5"] == (1, 18, 18, 18)
    assert rows["gap"] == (1, 1, 1, 1)


@pytest.mark.parametrize("name, n_out", [("A", 1), ("B", 1), ("C", 2)])
def test_output_shapes(name, n_out):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 51, 51, 51))
    assert out.shape == (2, n_out)


def test_small_input_and_n_outputs_override():
    model = build_model("A", in_size=19, n_outputs=3).eval()
    with torch.no_grad():
        assert model(torch.rand(4, 1, 19, 19, 19)).shape == (4, 3)
    with pytest.raises(LeanECDError):
        build_model("A", in_size=15)  # 15 -> 6 -> 4 -> 2 -> 0: feature map vanishes
    with pytest.raises(LeanECDError):
        build_model("D")


def test_dropout_is_dropout3d_and_adds_no_parameters():
    model = build_model("A", dropout=0.2)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout3d)]
    assert len(drops) == 4 and all(d.p == 0.2 for d in drops)
    assert count_parameters(model) == 80_825
    assert not any(isinstance(m, nn.Dropout3d) for m in build_model("A").modules())


def test_baselines_default_builds_and_documented_differences():
    zhao, mirzaee = build_model("zhao"), build_model("mirzaee")
    # Zhao: 270,633 + 1000 * 64 * 3^3 on the default 40^3 grid
    assert zhao.flat_features == 64 * 27
    assert count_parameters(zhao) == 1_998_633
    assert count_parameters(build_model("zhao", in_size=51)) == 4_366_633
    # Mirzaee: 2,178,088 + 2048 * 64 * 1^3 on the default 24^3 grid
    assert mirzaee.flat_features == 64
    assert count_parameters(mirzaee) == 2_309_160
    for name, model in (("zhao", zhao), ("mirzaee", mirzaee)):
        assert count_parameters(model) != MODELS[name].printed_parameters
        assert f"{count_parameters(model):,}" in BASELINE_COUNT_NOTES[name]
    # the printed Mirzaee count is exactly 2-D 3x3 convs + Linear(2048,1024) + Linear(1024,8)
    assert sum(mirzaee_printed_count_decomposition().values()) == MODELS["mirzaee"].printed_parameters


def test_baseline_output_shapes_small_grid():
    with torch.no_grad():
        assert build_model("zhao", in_size=40).eval()(torch.rand(2, 1, 40, 40, 40)).shape == (2, 1)
        assert build_model("mirzaee").eval()(torch.rand(2, 1, 24, 24, 24)).shape == (2, 8)


def test_flops_model_A():
    model = build_model("A")
    rows = layer_table(model, (1, 51, 51, 51))
    conv1 = next(r for r in rows if r["layer"] == "features.conv1")
    assert conv1["flops"] == 2 * 24**3 * 64 * 125  # 2 x MACs
    assert conv1["params"] == 64 * 125 + 64
    assert sum(r["params"] for r in rows) == 80_825
    fwd = flops_per_sample(model, backward=False)
    both = flops_per_sample(model)
    assert fwd == sum(r["flops"] for r in rows)
    assert 4.7e9 < both < 4.8e9  # ~3x forward, minus the data gradient of conv1
    assert both == 3 * fwd - conv1["flops"] - sum(r["flops"] for r in rows if r["type"] not in ("Conv3d",))
