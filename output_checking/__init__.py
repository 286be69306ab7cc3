"""output_checking: the output record, its review workflow, the checker web UI and signed release bundles."""
