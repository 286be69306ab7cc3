"""The toolkit's exception hierarchy: every user-facing error is an SRSError whose message says what was wrong and what to do."""


class SRSError(Exception):
    """Base class for errors a user can act on; the CLI prints the message without a traceback."""
