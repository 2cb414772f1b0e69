"""Run by test_training under `accelerate launch --num_processes 2 --cpu`: trains the tiny model."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from accelerate import PartialState
from tiny_model import SeparableDataset, TinyClassifier, TinyConfig

from applecider_core.training import TrainingConfig, train

output_dir = Path(sys.argv[1])
result = train(
    TinyClassifier(TinyConfig()), SeparableDataset(128, 0), SeparableDataset(32, 1),
    TrainingConfig(output_dir=str(output_dir), epochs=1, batch_size=16, learning_rate=1e-2, ema_decay=None),
)
state = PartialState()
rank, world = state.process_index, state.num_processes
(output_dir / f"rank_{rank}.json").write_text(json.dumps({"rank": rank, "world": world, "best_step": result.best_step}))
