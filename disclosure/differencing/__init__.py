"""Differencing: a new table that, set against tables already released, exposes small counts.

The check is an attacker with linear programming (SciPy's HiGHS). Every released cell is a
linear measurement of unknown true counts: a published count pins its cell (within the
rounding, below), a margin pins a sum of cells, a suppressed cell is only known to lie in
``[0, minimum count - 1]`` when its table has no margins (then every hidden cell is a primary
suppression) and in ``[0, whatever the margins allow]`` when it has them. Counts are never
negative. The tables of one comparison are aligned on their common dimensions (below), and
the attacker then tries the hypotheses that link their populations:

* **nested**: one population contains the other (a filter that removes a few units, a
  sub-group, a later date); the units in between are a table ``r >= 0`` of their own;
* **sum of two**: one population contains two others that do not overlap (all journeys
  against magistrates' and Crown Court journeys); the rest ``r = whole - part - part >= 0``;
* **same population**: two tables of the same units grouped differently (age bands recoded
  two ways, or different cells suppressed); the cells of their common refinement.

A hypothesis the published figures contradict is dropped (two unrelated tables are safe),
except that two tables sharing only some categories of a variable, with every hypothesis
contradicted, are reported for review: a category renamed or spelt differently ("F" and
"Female") is read as empty in the table without it, which contradicts every hypothesis just as
unrelated populations do and would hide any difference.
Under each one left, the attacker's interval of every exposed cell of ``r`` (and of its
margins), or of every cell of the refinement that neither table publishes, is the tightest
a linear program gets. **Rule**: a cell is disclosive when that interval, rounded inwards to
whole units, lies inside ``[1, minimum count - 1]`` and is narrower than the profile's
protection level (``max(secondary_protection_minimum, secondary_protection_percent% of its
upper end)``, the width suppression itself must leave). A margin of ``r`` is reported only
when none of its cells is. **Rounding**: a count published rounded stands for every count
that rounds to it (``base b``: within ``-b/2 .. +b/2``; controlled: within ``b - 1``;
midpoint-6: its bucket), so a difference that rounding leaves between 0 and the minimum
count is not reported, and one that it still pins inside that range is. A cell whose
interval the check cannot bound (the solver fails, or it is at least 1 with no upper end) is
*unjudged*: the pair is reported for review, never passed.

Covered cases (each against every earlier release of the project, and the sum-of-two case
against every pair of earlier releases):

1. **Nested populations**, cell by cell and through every margin, with suppressed and
   rounded cells on either side.
2. **Recoded categories**: with a mapping from the new table's categories to the earlier
   one's (e.g. ICCS divisions to sections, or one category split out of "other").
3. **Margins**: a one-way table against the margin of an earlier two-way table (and the
   reverse); dimensions are matched by name or shared labels, unmatched named ones summed.
4. **Bands recoded two ways**: age released as 18-24/25-34 in one table and 18-20/21-29/30-34
   in another; their common refinement (18-20, 21-24, 25-29, 30-34) is checked.
5. **A table against the sum or difference of two earlier ones**: ``A = B + C`` exposes
   nothing; ``A - B - C`` small is disclosive, whichever of the three is the new table.

Not covered, and reported as ``review`` ("not checked: needs a checker") rather than passed:
tables whose dimensions cannot be aligned (disjoint categories of one variable with no
mapping, unnamed dimensions or differently named bands that may or may not be the same
variable), a pair sharing only some categories that nothing relates (above), magnitude
tables (differencing of sums needs the per-unit contributions), rounding the check does not
know (or a base under 1). A non-finite cell is a ``DifferencingError``. Not attempted at all: combinations of four or more tables, linear
combinations other than a whole against one or two parts, and populations that overlap
without one containing the other (no hypothesis fits them). Two parts that nest (cumulative
months) can pass for parts that do not overlap, so a sum-of-two finding says "if they do not
overlap" for the checker to confirm.

Cost: one comparison per earlier table and one per pair of earlier tables that a cheap
interval screen cannot rule out, so ``n`` releases cost ``O(n^2)`` screens: 0.5 to 3 seconds
for 50 released tables of 6 to 80 cells with suppression, margins and rounding, on a shared
2-core machine (``tests/disclosure/test_differencing.py``).

The check is in modules, lowest first: ``errors``, ``published`` (what a released table says
about its cells), ``alignment`` (dimensions in common, and :func:`recode`), ``attacker`` (the
linear programme) and ``check`` (the comparisons and :func:`check_differencing`).
"""

from disclosure.differencing.alignment import recode
from disclosure.differencing.check import NOT_CHECKED, DifferencingFinding, check_differencing
from disclosure.differencing.errors import DifferencingError
from disclosure.differencing.published import ReleasedTable

__all__ = [
    "NOT_CHECKED",
    "DifferencingError",
    "DifferencingFinding",
    "ReleasedTable",
    "check_differencing",
    "recode",
]
