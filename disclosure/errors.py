"""The base of every error ``disclosure`` raises for a request it cannot honour, so that front
doors (the CLI, the session) can report them plainly without importing the engines."""


class DisclosureError(Exception):
    """A disclosure-control request is malformed or refused; the message says what to do."""


class UnusableValuesError(DisclosureError, ValueError):
    """A column's values cannot be judged as asked: values that are not real numbers (text,
    dates, durations, complex numbers), an infinite value, a whole number or a sum of them
    beyond 2**53 (where floating point stops counting exactly), a sum that overflows, a negative
    value where the rule needs none, or key values that differ but read the same (``1`` and
    ``"1"``). The message names the column (or cell), shows example values and says what to
    do."""


class EmptyTableError(DisclosureError, ValueError):
    """A table was asked of no records, so it has no cells to check or publish."""
