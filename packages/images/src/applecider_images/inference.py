"""Inference on ``applecider_core.records.Alert`` objects: tensors built directly, batched, fast CPU settings.

>>> model = load_model("runs/images/model")
>>> probs = classify_alerts(model, alerts)   # (N, C) class probabilities, NaN rows for alerts without stamps
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from applecider_core.records import Alert

from .preprocessing import metadata_preprocessor_for, preprocess_cutouts


def alert_inputs(alerts: Sequence[Alert], model_config, preprocessor: dict) -> dict[str, torch.Tensor]:
    """images (N, C, S, S), metadata (N, M), coords (N, 2) degrees for alerts that all have cutouts."""
    missing = [a.candid for a in alerts if a.cutouts is None]
    if missing:
        raise ValueError(f"alerts without cutouts cannot be classified from images: candid {missing[:5]}")
    stamps = np.stack([a.cutouts.on_grid() for a in alerts])  # (N, 3, 63, 63), Rubin's stamps centred
    ra = np.array([a.ra_deg for a in alerts], dtype=np.float64)
    dec = np.array([a.dec_deg for a in alerts], dtype=np.float64)
    images = preprocess_cutouts(stamps, ra, dec, model_config.image_input)
    meta = metadata_preprocessor_for(model_config, preprocessor).transform(np.stack([a.metadata for a in alerts]))
    return {"images": torch.from_numpy(images), "metadata": torch.from_numpy(meta),
            "coords": torch.tensor(np.stack([ra, dec], axis=1), dtype=torch.float32)}


def prepare_for_inference(model: torch.nn.Module, channels_last: bool = True) -> torch.nn.Module:
    """Eval mode and NHWC weights (the layout oneDNN convolutions prefer on CPU); outputs are unchanged."""
    model = model.eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


@torch.inference_mode()
def classify_alerts(model: torch.nn.Module, alerts: Sequence[Alert], batch_size: int = 64,
                    bf16: bool = False) -> np.ndarray:
    """Class probabilities (N, C) in ``model.config.class_names`` order; NaN rows for alerts without cutouts.

    ``bf16`` runs under CPU bfloat16 autocast (fast on CPUs with AMX/AVX512-BF16; logits differ from fp32
    by ~1e-2, see benchmarks/images_speed.py).
    """
    model.eval()
    probs = np.full((len(alerts), model.config.num_classes), np.nan, dtype=np.float32)
    usable = [i for i, a in enumerate(alerts) if a.cutouts is not None]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for start in range(0, len(usable), batch_size):
        rows = usable[start : start + batch_size]
        batch = alert_inputs([alerts[i] for i in rows], model.config, model.preprocessor)
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(**batch).logits
        probs[rows] = torch.softmax(logits.float(), dim=-1).numpy()
    return probs


@torch.no_grad()
def crop_depthwise_kernels(model: torch.nn.Module, example_images: torch.Tensor,
                           example_coords: torch.Tensor | None = None) -> int:
    """Shrink depthwise convolution kernels to the taps that can touch the input; returns how many changed.

    A k×k depthwise convolution with 'same' padding on an h×w map only ever uses the central
    (2h-1)×(2w-1) taps: the others always fall on the zero padding. At the paper's 49-pixel input the last
    ConvNeXt stages run on 3×3 and 1×1 maps, so their 7×7 kernels become 5×5 and 1×1, with identical
    outputs (up to float summation order). Only valid for inputs of ``example_images``' size.
    """
    sizes: dict[torch.nn.Conv2d, tuple[int, int]] = {}

    def record(module: torch.nn.Module, args: tuple) -> None:
        sizes[module] = tuple(args[0].shape[-2:])

    hooks = [m.register_forward_pre_hook(record)
             for m in model.modules()
             if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1 and m.stride == (1, 1)]
    try:
        encoder = getattr(model, "image_encoder", None)
        backbone = encoder.backbone if encoder is not None else model
        backbone(example_images)
    finally:
        for hook in hooks:
            hook.remove()
    changed = 0
    for conv, (h, w) in sizes.items():
        kh, kw = conv.kernel_size
        new_h, new_w = min(kh, 2 * h - 1), min(kw, 2 * w - 1)
        if (new_h, new_w) == (kh, kw) or conv.padding != (kh // 2, kw // 2) or conv.dilation != (1, 1):
            continue
        top, left = (kh - new_h) // 2, (kw - new_w) // 2
        conv.weight = torch.nn.Parameter(conv.weight[:, :, top : top + new_h, left : left + new_w].contiguous())
        conv.kernel_size, conv.padding = (new_h, new_w), (new_h // 2, new_w // 2)
        changed += 1
    return changed
