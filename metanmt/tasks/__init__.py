"""Tasks: what the meta-learner samples episodes from (translation pairs, and others)."""
