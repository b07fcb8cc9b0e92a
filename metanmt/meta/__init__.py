"""The episodic meta-learning core: knows models, losses and episodes, nothing of language or images."""

from metanmt.meta.episode import Episode
from metanmt.meta.learner import Adapted, MetaConfig, MetaLearner, MetaStepResult

__all__ = ["Adapted", "Episode", "MetaConfig", "MetaLearner", "MetaStepResult"]
