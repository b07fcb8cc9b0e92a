"""One module per ``metanmt`` sub-command (see :mod:`metanmt.cli`)."""
