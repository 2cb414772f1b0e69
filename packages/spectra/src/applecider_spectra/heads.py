"""What every spectra model shares: its loss (class-balanced focal or redshift regression), the output
wrapping, Monte-Carlo dropout prediction, the recurrent layers' initialisation and the conv-implementation
switch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.losses import FocalLoss, class_balanced_weights
from applecider_core.pretrained import ClassifierOutput


def build_loss(config) -> nn.Module | None:
    """Class-balanced focal loss (Cui et al. 2019 α from ``config.class_counts``; γ ``focal_gamma``) for
    classification; None for redshift (see :func:`redshift_loss`). α is not saved with the weights (it is
    rebuilt from the config), so the state dict is the same with or without class counts."""
    if config.task != "classification":
        return None
    alpha = None
    if config.class_counts is not None:
        alpha = class_balanced_weights(config.class_counts, config.class_balance_beta)
    loss = FocalLoss(config.focal_gamma, alpha, getattr(config, "label_smoothing", 0.0))
    loss._non_persistent_buffers_set.add("alpha")
    return loss


def redshift_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str, delta: float = 0.05) -> torch.Tensor:
    """Regression loss between predicted and true redshift (B,)."""
    prediction, target = prediction.float(), target.float()
    if kind == "huber":
        return F.huber_loss(prediction, target, delta=delta)
    if kind == "l1":
        return F.l1_loss(prediction, target)
    return F.mse_loss(prediction, target)


def make_output(model: nn.Module, logits: torch.Tensor, embedding: torch.Tensor,
                labels: torch.Tensor | None) -> ClassifierOutput:
    """Wrap logits (B, C) — or (B, 1) Softplus redshift for the regression task — and the loss if labelled."""
    config = model.config
    loss = None
    if labels is not None:
        if config.task == "redshift":
            loss = redshift_loss(logits[:, 0], labels, config.redshift_loss, getattr(config, "huber_delta", 0.05))
        else:
            loss = model.loss_fn(logits, labels.long())
    return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)


@torch.no_grad()
def mc_dropout_predict(model: nn.Module, flux: torch.Tensor, passes: int = 20,
                       **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo dropout (SNIascore): ``passes`` stochastic forward passes with dropout active and
    normalisation layers in eval mode. Returns mean and std over passes of the class probabilities (B, C)
    (or of the predicted redshift (B, 1) for regressors; a model with ``output_probabilities`` maps its own
    outputs, e.g. a sigmoid). ``inputs`` are further model inputs (CCSNscore's light curves)."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    was_training = model.training
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()
    # small recurrent models (SNIascore, CCSNscore) run several passes as one batch: the time loop runs once
    group = max(1, min(passes, getattr(model, "mc_rows_per_batch", 0) // max(1, len(flux))))
    try:
        samples = []
        for start in range(0, passes, group):
            n = min(group, passes - start)
            repeated = {k: v.repeat(n, *([1] * (v.ndim - 1))) for k, v in inputs.items()}
            out = model(flux.repeat(n, *([1] * (flux.ndim - 1))), **repeated).logits.float()
            if hasattr(model, "output_probabilities"):
                out = model.output_probabilities(out)
            elif model.config.task != "redshift":
                out = out.softmax(-1)
            samples.append(out.view(n, len(flux), -1))  # dropout masks are drawn per row: independent passes
        stacked = torch.cat(samples)  # (passes, B, C)
    finally:
        model.train(was_training)
    return stacked.mean(0), stacked.std(0, unbiased=passes > 1)


def keras_recurrent_init(module: nn.Module) -> nn.Module:
    """Initialise every LSTM / GRU in ``module`` as Keras and MATLAB do (the frameworks of CCSNscore and
    SNIascore): Glorot-uniform input weights, orthogonal recurrent weights, zero biases and, for LSTMs, forget-gate
    bias 1. PyTorch's default (uniform ±1/√H everywhere) starts these long (209–256 step) sequences with almost
    no input dependence left in the final states, and training sits at chance for many epochs."""
    for layer in module.modules():
        if not isinstance(layer, (nn.LSTM, nn.GRU)):
            continue
        hidden = layer.hidden_size
        for name, param in layer.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)  # fan_in = inputs, fan_out = gates·H, as Keras' (in, gates·H) kernel
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(param)
            elif name.startswith("bias"):
                nn.init.zeros_(param)
                if isinstance(layer, nn.LSTM) and name.startswith("bias_ih"):
                    with torch.no_grad():
                        param[hidden : 2 * hidden] = 1.0  # gate order (input, forget, cell, output)
    return module


def as_flux_batch(flux: torch.Tensor) -> torch.Tensor:
    """Accept (B, L) or (B, 1, L) flux; return (B, 1, L) float."""
    if flux.ndim == 2:
        flux = flux[:, None, :]
    if flux.ndim != 3 or flux.shape[1] != 1:
        raise ValueError(f"flux must have shape (B, L) or (B, 1, L), got {tuple(flux.shape)}")
    return flux.float()
