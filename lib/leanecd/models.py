"""The CNN architectures of Table 1: lean Models A, B, C and two heavy baselines.

Lean models (the paper's, §3.2): convolutions only, no padding, a per-channel PReLU
after every convolution but the last, and a global average pooling (GAP) that turns
the last feature map into the outputs. Table 1 writes a layer as ``p@b/c``: a
p×p×p kernel, b channels, stride c (1 when not written).

====== ==================================================== ======= =========
model  layers                                               outputs params
====== ==================================================== ======= =========
A      5@64/2, 3@32, 3@16, 3@8, 1@1, GAP                    1       80,825
B      5@128/2, 3@64, 3@32, 3@16, 3@8, 1@1, GAP             1       310,265*
C      5@64/2, 3@32, 3@16, 3@8, 1@2, GAP                    2       80,834
====== ==================================================== ======= =========

\\* the paper prints 310,201 for B; see :data:`MODEL_B_COUNT_NOTE`.

For a 1×51×51×51 input, Model A's feature maps are 24³ → 22³ → 20³ → 18³ → (1×1×1
convolution) 18³ → GAP.

Dropout (the paper says "dropout layers were included" without saying where or how
much): ``dropout=p`` adds an ``nn.Dropout3d(p)`` (whole channels dropped) after each
PReLU. The default ``p = 0`` puts an ``nn.Identity`` there instead. Dropout has no
parameters, so the counts above hold for any ``p``.

Heavy baselines (Zhao et al. 2020, Mirzaee et al. 2024) take the raw charge density
ρ on a cubic grid of ``in_size`` points and end in fully connected (FC) layers, so
their parameter count depends on ``in_size``. Our builds follow Table 1 literally;
neither printed count can be reproduced by a 3-D build with any cubic input (see
:data:`BASELINE_COUNT_NOTES` and :func:`mirzaee_printed_count_decomposition`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from . import registry
from .errors import LeanECDError

__all__ = [
    "build_model",
    "LeanCNN",
    "HeavyCNN",
    "Standardized",
    "INPUT_NORMS",
    "count_parameters",
    "layer_table",
    "flops_per_sample",
    "MODEL_B_COUNT_NOTE",
    "BASELINE_COUNT_NOTES",
    "BASELINE_DEFAULT_IN_SIZE",
    "mirzaee_printed_count_decomposition",
]

#: Lean layer specifications: (kernel, channels, stride) per convolution, in order.
LEAN_SPECS: dict[str, list[tuple[int, int, int]]] = {
    "A": [(5, 64, 2), (3, 32, 1), (3, 16, 1), (3, 8, 1), (1, 1, 1)],
    "B": [(5, 128, 2), (3, 64, 1), (3, 32, 1), (3, 16, 1), (3, 8, 1), (1, 1, 1)],
    "C": [(5, 64, 2), (3, 32, 1), (3, 16, 1), (3, 8, 1), (1, 2, 1)],
}

MODEL_B_COUNT_NOTE = (
    "Model B built as Table 1 describes (5@128/2, 3@64, 3@32, 3@16, 3@8, 1@1, GAP; "
    "per-channel PReLU after every convolution but the last) has 310,265 fittable "
    "parameters. The paper prints 310,201, 64 fewer. Exactly 64 parameters are either "
    "the 64-channel PReLU after the 3@64 convolution or that convolution's 64 biases; "
    "a dropped activation is the more likely slip (a bias-free convolution would be an "
    "odd exception in an otherwise uniform network). We build the faithful, uniform "
    "310,265-parameter version."
)

#: Default grid (points per axis) of the raw-density input of each baseline; chosen
#: as the cubic grid whose faithful build comes closest to the printed count.
BASELINE_DEFAULT_IN_SIZE = {"zhao": 40, "mirzaee": 24}

BASELINE_COUNT_NOTES = {
    "zhao": (
        "Zhao et al. (Table 1): Conv3d 5³×32, MaxPool 2, Conv3d 2³×64, MaxPool 2, "
        "Conv3d 3³×64, MaxPool 2, FC-1000, FC-128, FC-64, FC-32, 1 output (ReLU; valid "
        "convolutions; 2×2×2 max-pooling, floor). Parameters = 270,633 + 1000·F where "
        "F = 64·s³ is the flattened size (s = pooled edge). The printed 2,360,736 would "
        "need F = 2,090.103 (not an integer); no combination of conv/FC biases, "
        "BatchNorm (2 or 4 per channel), 2-D kernels, an omitted output layer or other "
        "kernel sizes (1-7) gives an integer F = 64·s³ (searched). With s = 3 "
        "(in_size 38-45; default 40) the build has 1,998,633 parameters (-15.3 %); "
        "s = 4 (e.g. in_size 51) gives 4,366,633."
    ),
    "mirzaee": (
        "Mirzaee et al. (Table 1): Conv3d 3³×16, MaxPool 2, Conv3d 3³×32, MaxPool 2, "
        "Conv3d 3³×64, MaxPool 2, FC-11200, FC-2048, FC-1024, FC-8 = 8 outputs. We read "
        "'FC-11200' as the flattened feature vector (11,200 = 64·5·5·7, a non-cubic "
        "grid) feeding FC-2048, FC-1024 and the 8-output layer. Parameters = "
        "2,178,088 + 2048·F with F = 64·s³; any 3-D build exceeds the printed "
        "2,129,672 even at F = 0. The printed number equals EXACTLY 3×3 (2-D) "
        "convolutions 1→16→32→64 with biases (23,296) + Linear(2048, 1024) + "
        "Linear(1024, 8) (2,106,376): i.e. kernels counted as k² instead of k³ and no "
        "parameters for the layer that maps the flattened features to FC-2048. Our "
        "default in_size 24 (s = 1, F = 64) gives the smallest faithful 3-D build: "
        "2,309,160 parameters (+8.4 %); F = 11,200 would give 25,115,688."
    ),
}


def mirzaee_printed_count_decomposition() -> dict[str, int]:
    """The only decomposition found that gives Table 1's 2,129,672 for Mirzaee et al.

    2-D 3×3 convolutions 1→16→32→64 (with biases), then Linear(2048→1024) and
    Linear(1024→8). Returned as ``{layer: parameters}``; the values sum to the
    printed count.
    """
    return {
        "conv2d 3x3 1->16": 1 * 16 * 9 + 16,
        "conv2d 3x3 16->32": 16 * 32 * 9 + 32,
        "conv2d 3x3 32->64": 32 * 64 * 9 + 64,
        "linear 2048->1024": 2048 * 1024 + 1024,
        "linear 1024->8": 1024 * 8 + 8,
    }


class LeanCNN(nn.Module):
    """A lean CNN: valid 3-D convolutions with per-channel PReLU, then global average pooling.

    ``specs`` is a list of ``(kernel, channels, stride)``; the last entry is the output
    convolution (no activation), whose channel count is the number of outputs.
    Input ``(N, 1, n, n, n)``; output ``(N, n_outputs)`` in normalised target units.
    """

    def __init__(self, specs: Sequence[tuple[int, int, int]], dropout: float = 0.0, in_channels: int = 1):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise LeanECDError(f"dropout must be in [0, 1), not {dropout}")
        self.specs = [tuple(s) for s in specs]
        layers: list[tuple[str, nn.Module]] = []
        c_in = in_channels
        for i, (k, c_out, stride) in enumerate(self.specs[:-1], start=1):
            layers.append((f"conv{i}", nn.Conv3d(c_in, c_out, k, stride=stride)))
            layers.append((f"prelu{i}", nn.PReLU(num_parameters=c_out)))
            layers.append((f"drop{i}", nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()))
            c_in = c_out
        k, c_out, stride = self.specs[-1]
        layers.append((f"conv{len(self.specs)}", nn.Conv3d(c_in, c_out, k, stride=stride)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.n_outputs = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gap(self.features(x)).flatten(1)


class HeavyCNN(nn.Module):
    """Conv → MaxPool blocks, flatten, fully connected layers (ReLU): the baselines' pattern.

    ``convs`` is a list of ``(kernel, channels)`` (stride 1, no padding, each followed
    by ReLU and 2×2×2 max-pooling); ``hidden`` the FC widths; then a linear output layer.
    """

    def __init__(self, convs: Sequence[tuple[int, int]], hidden: Sequence[int], n_outputs: int,
                 in_size: int, dropout: float = 0.0, in_channels: int = 1):
        super().__init__()
        layers: list[tuple[str, nn.Module]] = []
        c_in, s = in_channels, in_size
        for i, (k, c_out) in enumerate(convs, start=1):
            layers.append((f"conv{i}", nn.Conv3d(c_in, c_out, k)))
            layers.append((f"relu{i}", nn.ReLU()))
            layers.append((f"pool{i}", nn.MaxPool3d(2)))
            c_in, s = c_out, (s - k + 1) // 2
            if s < 1:
                raise LeanECDError(f"in_size {in_size} is too small for this network (feature map vanishes)")
        self.flat_features = c_in * s**3
        self.features = nn.Sequential(OrderedDict(layers))
        fc: list[tuple[str, nn.Module]] = []
        width = self.flat_features
        for j, h in enumerate(hidden, start=1):
            fc.append((f"fc{j}", nn.Linear(width, h)))
            fc.append((f"fc_relu{j}", nn.ReLU()))
            if dropout > 0:
                fc.append((f"fc_drop{j}", nn.Dropout(dropout)))
            width = h
        fc.append(("out", nn.Linear(width, n_outputs)))
        self.head = nn.Sequential(OrderedDict(fc))
        self.n_outputs = n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


#: Input scalings: ``"none"`` (the paper's inputs as they are), ``"global"`` (one mean
#: and one standard deviation over every voxel of the training inputs), ``"voxel"``
#: (a mean and a standard deviation per grid point). The paper does not say.
INPUT_NORMS = ("none", "global", "voxel")


class Standardized(nn.Module):
    """``net((x - mean) / std)``: a network that takes raw inputs and standardises them itself.

    ``mean`` and ``std`` (buffers, units of the input, e.g. e/Å³) are a scalar
    (``"global"``) or one value per grid point, shape ``(1, 1, n, n, n)`` (``"voxel"``).
    They are fixed statistics of the training inputs, not parameters: the parameter
    count is the wrapped network's.
    """

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor, kind: str):
        super().__init__()
        if kind not in INPUT_NORMS[1:]:
            raise LeanECDError(f"input scaling must be one of {INPUT_NORMS[1:]}, not {kind!r}")
        std = torch.as_tensor(std, dtype=torch.float32)
        if not torch.isfinite(std).all() or (std <= 0).any():
            raise LeanECDError("input standard deviation must be finite and > 0")
        self.net = net
        self.kind = kind
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", std.clone())
        self.n_outputs = getattr(net, "n_outputs", None)
        self.model_name = getattr(net, "model_name", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def build_model(name: str, dropout: float = 0.0, in_size: int | None = None,
                n_outputs: int | None = None) -> nn.Module:
    """Build a Table 1 model: ``"A"``, ``"B"``, ``"C"``, ``"zhao"`` or ``"mirzaee"``.

    ``in_size``: grid points per axis of the cubic input (51 for the lean models'
    autocorrelations, 0.2 Å spacing; baselines default to
    :data:`BASELINE_DEFAULT_IN_SIZE`). The lean models are fully convolutional, so
    ``in_size`` only checks that the feature maps do not vanish. ``n_outputs``
    overrides the number of outputs (A, B: 1; C: 2; Zhao: 1; Mirzaee: 8).
    """
    key = name if name in ("zhao", "mirzaee") else name.upper()
    if key in LEAN_SPECS:
        specs = list(LEAN_SPECS[key])
        if n_outputs is not None:
            k, _, stride = specs[-1]
            specs[-1] = (k, int(n_outputs), stride)
        size = 51 if in_size is None else int(in_size)
        final = _lean_output_size(specs, size)
        if final < 1:
            raise LeanECDError(f"Model {key}: in_size {size} is too small (feature map vanishes)")
        model = LeanCNN(specs, dropout=dropout)
    elif key == "zhao":
        model = HeavyCNN([(5, 32), (2, 64), (3, 64)], [1000, 128, 64, 32],
                         n_outputs=1 if n_outputs is None else int(n_outputs),
                         in_size=BASELINE_DEFAULT_IN_SIZE["zhao"] if in_size is None else int(in_size),
                         dropout=dropout)
    elif key == "mirzaee":
        model = HeavyCNN([(3, 16), (3, 32), (3, 64)], [2048, 1024],
                         n_outputs=8 if n_outputs is None else int(n_outputs),
                         in_size=BASELINE_DEFAULT_IN_SIZE["mirzaee"] if in_size is None else int(in_size),
                         dropout=dropout)
    else:
        raise LeanECDError(f"unknown model {name!r}; choose one of {', '.join(registry.model_names('network'))}")
    model.model_name = key
    return model


def _lean_output_size(specs, size: int) -> int:
    for k, _, stride in specs:
        size = (size - k) // stride + 1
    return size


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (fittable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _leaf_modules(model: nn.Module):
    for name, mod in model.named_modules():
        if len(list(mod.children())) == 0:
            yield name, mod


def layer_table(model: nn.Module, input_shape: Sequence[int] = (1, 51, 51, 51)) -> list[dict]:
    """One row per leaf layer for a single sample of shape ``input_shape`` (C, n, n, n).

    Each row: ``layer`` (module name), ``type``, ``output_shape`` (without the batch
    axis), ``params`` and ``flops`` (forward, per sample). FLOPs count 2 per
    multiply-accumulate for convolutions and linear layers (bias adds ignored), one
    per output element for activations, pooling and dropout, one per input element
    for global average pooling.
    """
    rows: list[dict] = []
    hooks = []

    def hook(name):
        def fn(mod, inp, out):
            x = inp[0]
            n_out = out[0].numel()
            if isinstance(mod, nn.Conv3d | nn.Conv2d | nn.Conv1d):
                macs = n_out * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
                flops = 2 * macs
            elif isinstance(mod, nn.Linear):
                flops = 2 * mod.in_features * mod.out_features
            elif isinstance(mod, nn.AdaptiveAvgPool3d):
                flops = x[0].numel()
            elif isinstance(mod, nn.Identity):
                flops = 0
            else:
                flops = n_out
            rows.append({
                "layer": name,
                "type": type(mod).__name__,
                "output_shape": tuple(out.shape[1:]),
                "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                "flops": int(flops),
            })
        return fn

    for name, mod in _leaf_modules(model):
        hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def flops_per_sample(model: nn.Module, input_shape: Sequence[int] = (1, 51, 51, 51),
                     backward: bool = True) -> int:
    """Analytic FLOPs per sample: forward, or forward + backward (``backward=True``).

    Backward of a convolution or linear layer costs two forward passes (gradient of the
    input and of the weights), except for the first such layer, whose input (the data)
    needs no gradient: one. Element-wise layers cost one forward pass backward. So
    forward + backward ≈ 3× forward. Model A, 1×51³: 1.66 GFLOP forward, 4.76 GFLOP
    forward + backward.
    """
    rows = layer_table(model, input_shape)
    total = sum(r["flops"] for r in rows)
    if not backward:
        return total
    first_weighted = True
    for r in rows:
        if r["type"] in ("Conv3d", "Conv2d", "Conv1d", "Linear"):
            total += r["flops"] if first_weighted else 2 * r["flops"]
            first_weighted = False
        else:
            total += r["flops"]
    return total
