"""srs.governance: the core every other layer stands on (safe people, safe projects, and the
ledgers of safe settings).

- ``policy``: the policy files (SDC thresholds, classifications, roles) loaded and validated.
- ``deployment``: where a deployment's registry, vault, keys and audit log live (``SRS_HOME``).
- ``registry``: accounts, projects, datasets, grants and outputs in a relational database.
- ``access``: the one access check (``authorise``) every read and action passes.
- ``audit``: the hash-chained audit log.
- ``budget``: the per-project privacy-budget ledger (no DP result without a committed debit).

This layer imports only ``disclosure`` and ``srs.errors``; ``tests/test_layers.py`` holds it to that.
"""
