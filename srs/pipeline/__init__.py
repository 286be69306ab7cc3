"""srs.pipeline: safe data, from agencies' extracts to linked research tables in the vault.

- ``simulation``: simulated agency extracts (police to probation) for demos and tests.
- ``offences``, ``names``: reference data (ICCS offence codes) and name handling.
- ``ingest``: validates an extract against its source's schema and codes.
- ``deid``: keyed pseudonymisation (person and case keys).
- ``linkage``: Splink linkage of people across sources, with blocking chosen by measurement.
- ``linked_datasets``: the linked research tables built from the linked extracts.
- ``stewardship``: the steward's run of all of the above into the vault, audited.

This layer imports the governance core and the vault, never synthetic/, output_checking/ or the
research surface; ``tests/test_layers.py`` holds it to that.
"""
