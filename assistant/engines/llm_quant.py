"""Quantising the local LLM: dynamic int8 on the CPU, torchao weight-only on a GPU.

Dynamic int8 stores int8 weights and scales each call's activations from the tensor fed (one scale
for the whole tensor). Two things decide how much that costs the answers: how finely the weights
are scaled (one scale per layer flattens a layer's small channels under its outliers; one per
output channel does not), and which layers are quantised at all. bench/llm.py measures every mode
(README, Known limits).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


def dynamic_int8(model, quantization: str):  # type: ignore[no-untyped-def]
    """CPU dynamic int8 in one of three modes.

    ``int8``: every Linear, one scale per weight tensor. Because the activation scale depends on
    what is fed, prefilling a prompt in two chunks (the prefix cache) gives other numbers than one
    pass, and SmolLM2-135M then answered "What is the capital of France?" with nonsense.
    ``int8-mlp``: only the MLP's input projections (gate, up); attention, the output layer and the
    down projection (whose input has the outliers per-tensor int8 handles worst) stay fp32.
    ``int8-channel``: every Linear, the output layer included, with one scale per output channel."""
    import torch

    if quantization == "int8-channel":
        return int8_per_channel(model)
    qdefs = torch.ao.quantization
    spec: set[type] | dict[str, object] = {torch.nn.Linear}
    if quantization == "int8-mlp":
        spec = {
            name: qdefs.default_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
            and ".mlp." in f".{name}."
            and not name.endswith(("down_proj", "fc2", "c_proj"))
        }
    with _quantised_types_allowed():
        # in place: a copy would hold the fp32 weights and the int8 ones at once (peak memory)
        return qdefs.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def int8_per_channel(model):  # type: ignore[no-untyped-def]
    """Every Linear to dynamic int8 with one scale per output channel, one layer at a time.

    The checkpoint is memory-mapped; each float weight's pages are let go as soon as its int8 copy
    exists, largest first (the output layer), so loading peaks near the int8 model plus one float
    layer (Qwen2.5-0.5B: a 2.5 GB fp32 checkpoint, 0.5 GB of int8 Linears).

    Measured and not kept: the MLP down projections read inputs at up to 1800x their mean, which
    one activation scale per call blurs, and keeping the 18 layers over 100x in fp32 (found with a
    calibration pass) fixed some answers ("Jupiter" for "Mars") but broke as many: bench/llm.py
    82% right against 83%, and slower (two runs, each against SmolLM2 int8-mlp: first clause
    1.11x against 1.04x, tokens/s 0.72x against 0.79x). SmoothQuant's smoothing (alpha 0.5, scales
    from a calibration pass folded into the norms and the up projections) fixed "Abraham Lincoln"
    for the first president but lost overall: 73% right against 83% (one run, side by side; with
    one weight scale per output channel, the smoothed-in outlier columns blur each row instead)."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from assistant.core.allocator import drop_file_pages

    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, torch.nn.Linear)
    ]
    linears.sort(key=lambda found: -found[2].weight.numel())
    with _quantised_types_allowed(), torch.no_grad():
        for parent, name, linear in linears:
            linear.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
            setattr(parent, name, DynamicInt8Linear.from_float(linear))
            weight = linear.weight
            drop_file_pages(weight.data_ptr(), weight.numel() * weight.element_size())
    return model


@contextmanager
def _quantised_types_allowed() -> Iterator[None]:
    """torch marks its quantised tensor types deprecated; they work, so say nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def weight_only_quantize(model, quantization: str):  # type: ignore[no-untyped-def]
    """int8/int4 weight-only on a GPU through torchao (bf16 activations)."""
    import torch

    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError as exc:
        raise RuntimeError(
            f"llm.quantization={quantization} on a GPU needs torchao: pip install torchao (or use bf16/fp16)"
        ) from exc
    model = model.to(torch.bfloat16)
    quantize_(model, Int8WeightOnlyConfig() if quantization == "int8" else Int4WeightOnlyConfig())
    return model
