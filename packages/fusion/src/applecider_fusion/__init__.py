"""AppleCiDEr fusion: class-wise averaging of the modality models' probabilities (paper I §6), fused
classification of alert packets (``Classifier``, ``cider classify``) and the joint evaluation."""

from .classifier import Classifier
from .fusion import MODALITIES, FusionError, ProbabilityFusion
from .inputs import read_spectra_table
from .report import write_report

__all__ = ["MODALITIES", "Classifier", "FusionError", "ProbabilityFusion", "read_spectra_table", "write_report"]
__version__ = "0.1.0"
