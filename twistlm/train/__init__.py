"""Training a SpeechLM on unit shards: config, data order, loop (DDP/FSDP under torchrun)."""

from twistlm.train.config import TrainConfig
from twistlm.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
