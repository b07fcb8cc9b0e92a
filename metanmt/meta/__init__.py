"""The episodic meta-learning core: knows models, losses and episodes, nothing of language or images."""

from metanmt.meta.episode import Episode
from metanmt.meta.learner import ALGORITHMS, Adapted, MetaConfig, MetaLearner, MetaStepResult

__all__ = ["ALGORITHMS", "Adapted", "Episode", "MetaConfig", "MetaLearner", "MetaStepResult"]
