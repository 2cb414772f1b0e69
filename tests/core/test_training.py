import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from applecider_core.pretrained import PretrainedError
from applecider_core.training import TrainingConfig, train

from .tiny_model import SeparableDataset, TinyClassifier, TinyConfig

HERE = Path(__file__).parent


def _config(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "run"), "epochs": 2, "batch_size": 16, "learning_rate": 1e-2,
            "checkpoint_every_steps": 4, "seed": 3}
    return TrainingConfig(**{**base, **overrides})


def test_training_learns_writes_outputs_and_loadable_model(tmp_path):
    torch.manual_seed(0)  # the model is built before train() seeds: fix its initial weights too
    result = train(TinyClassifier(TinyConfig()), SeparableDataset(192, 0), SeparableDataset(64, 1), _config(tmp_path, epochs=4))
    run = tmp_path / "run"
    assert result.best_metrics["accuracy"] > 0.8
    assert {"config.yaml", "metrics.json", "history.json", "model", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert len(json.loads((run / "history.json").read_text())) == 4
    loaded = TinyClassifier.from_pretrained(result.model_dir)
    x = torch.randn(5, 4)
    assert loaded(x).logits.shape == (5, 2)


def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    full = train(TinyClassifier(TinyConfig()), SeparableDataset(96, 0), SeparableDataset(32, 1),
                 _config(tmp_path / "a", ema_decay=None, schedule="constant"))
    # Interrupted run: stop after 4 of 12 steps, then resume to the end.
    part = _config(tmp_path / "b", ema_decay=None, schedule="constant", max_steps=4)
    torch.manual_seed(0)  # same initial weights as the uninterrupted run
    train(TinyClassifier(TinyConfig()), SeparableDataset(96, 0), SeparableDataset(32, 1), part)
    checkpoints = sorted((tmp_path / "b" / "run" / "checkpoints").glob("step_*"))
    assert checkpoints[-1].name == "step_00000004"
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    resumed = train(TinyClassifier(TinyConfig()), SeparableDataset(96, 0), SeparableDataset(32, 1),
                    _config(tmp_path / "b", ema_decay=None, schedule="constant"))
    assert resumed.history[-1]["step"] == full.history[-1]["step"] == 12
    # The final weights (last checkpoint) equal those of the uninterrupted run: same data order, same steps.
    a = load_file(tmp_path / "a" / "run" / "checkpoints" / "step_00000012" / "model.safetensors")
    b = load_file(tmp_path / "b" / "run" / "checkpoints" / "step_00000012" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_early_stopping_stops_after_patience(tmp_path):
    # monitor a metric that never improves after the first epoch: 'n' is constant
    result = train(TinyClassifier(TinyConfig()), SeparableDataset(64, 0), SeparableDataset(16, 1),
                   _config(tmp_path, epochs=10, monitor="n", patience=2))
    assert len(result.history) == 3


class ThreadCountingDataset(SeparableDataset):
    """Records torch's thread count whenever the loop reads an item (num_workers 0: in the training thread)."""

    seen: set[int] = set()

    def __getitem__(self, index):
        ThreadCountingDataset.seen.add(torch.get_num_threads())
        return super().__getitem__(index)


def test_threads_setting_holds_while_training_and_is_restored_after(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ThreadCountingDataset.seen = set()
        train(TinyClassifier(TinyConfig()), ThreadCountingDataset(32, 0), None, _config(tmp_path, epochs=1, threads=1))
        assert ThreadCountingDataset.seen == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        _config(tmp_path, threads=0)


def test_pretrained_round_trip_and_strict_errors(tmp_path):
    model = TinyClassifier(TinyConfig())
    model.save_pretrained(tmp_path / "m", preprocessor={"mean": [1.0]})
    loaded = TinyClassifier.from_pretrained(tmp_path / "m")
    x = torch.randn(3, 4)
    torch.testing.assert_close(model.eval()(x).logits, loaded(x).logits)
    assert loaded.preprocessor == {"mean": [1.0]}
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "hidden": 16}))
    with pytest.raises(PretrainedError, match="stored"):
        TinyClassifier.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": "other"}))
    with pytest.raises(PretrainedError, match="'other'"):
        TinyClassifier.from_pretrained(tmp_path / "m")
    with pytest.raises(PretrainedError, match="not a directory"):
        TinyClassifier.from_pretrained(tmp_path / "nowhere")


@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate launcher not installed")
def test_two_process_accelerate_launch_on_cpu(tmp_path):
    """The multi-GPU path, proven on CPU: two gloo processes share the loop and write one checkpoint.

    `accelerate launch --cpu` alone starts a single process unless MPI is installed; the torchrun-based
    launcher (`--multi_gpu`) starts both, and the trainer selects CPU + gloo because no GPU is visible.
    """
    launcher = Path(sys.executable).parent / "accelerate"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE), "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", str(HERE / "ddp_train_script.py"), str(tmp_path / "ddp")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = sorted(json.loads(p.read_text())["rank"] for p in (tmp_path / "ddp").glob("rank_*.json"))
    assert ranks == [0, 1]
    assert all(json.loads(p.read_text())["world"] == 2 for p in (tmp_path / "ddp").glob("rank_*.json"))
    # 128 samples / (16 per process x 2 processes) = 4 optimiser steps in the single epoch
    assert [p.name for p in (tmp_path / "ddp" / "checkpoints").glob("step_*")] == ["step_00000004"]
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
