"""srs: the secure research environment: registry, access, audit, vault, data pipeline and CLI."""

__version__ = "0.1.0"
