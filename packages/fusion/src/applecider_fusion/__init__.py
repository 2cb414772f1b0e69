"""AppleCiDEr fusion: class-wise averaging of the modality models' probabilities (paper I §6), fused
classification of alert packets (``Classifier``, ``cider classify``) and the joint evaluation."""

from .classifier import Classifier
from .fusion import MODALITIES, FusionError, ProbabilityFusion

__all__ = ["MODALITIES", "Classifier", "FusionError", "ProbabilityFusion"]
__version__ = "0.1.0"
