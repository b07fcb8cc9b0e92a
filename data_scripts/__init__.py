"""Download and preparation scripts for the paper-scale corpora (run on a machine with internet).

Run them from the repository root as modules, e.g. ``python -m data_scripts.europarl --out DATA``;
see ``data_scripts/README.md`` for each source, its URL and licence, and the config entry to use.
"""
