"""The base of every error ``disclosure`` raises for a request it cannot honour, so that front
doors (the CLI, the session) can report them plainly without importing the engines."""


class DisclosureError(Exception):
    """A disclosure-control request is malformed or refused; the message says what to do."""


class UnusableValuesError(DisclosureError, ValueError):
    """A column's values cannot be judged as asked: text that is not a number, an infinite
    value, a sum that overflows, or a negative value where the rule needs none. The message
    names the column (or cell) and shows example values."""


class EmptyTableError(DisclosureError, ValueError):
    """A table was asked of no records, so it has no cells to check or publish."""
