"""The base of every error ``disclosure`` raises for a request it cannot honour, so that front
doors (the CLI, the session) can report them plainly without importing the engines."""


class DisclosureError(Exception):
    """A disclosure-control request is malformed or refused; the message says what to do."""
