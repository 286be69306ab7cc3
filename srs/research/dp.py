"""``s.dp``: the local session's differentially private queries, paid from the project's budget.

``DifferentialPrivacy`` implements ``srs.research.surface.DPSurface`` (where its methods'
signatures and docstrings live): it reads the named dataset through the access check, spends
from the ledger, releases and records a ``dp_result`` output (``output_checking.dp_release``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from output_checking.outputs import get_output
from srs.governance.budget import BudgetState, SpendReceipt, budget_state
from srs.research.surface import SYNTHETIC, DPSurface
from srs.research.values import OutputSummary, SessionError

if TYPE_CHECKING:
    from srs.research.session import ResearchSession


def _spend_attrs(receipt: SpendReceipt, **extra: Any) -> dict[str, Any]:
    """What a DP result's ``attrs["srs_dp"]`` says of the spend that paid for it."""
    return {
        "rho": receipt.rho,
        "epsilon": receipt.epsilon,
        "delta": receipt.epsilon_delta,
        "spend_id": receipt.spend_id,
        "remaining_rho": receipt.remaining_rho,
        **extra,
    }


class DifferentialPrivacy(DPSurface):
    """``s.dp`` of the local session: each query read, spent, released and recorded here,
    against the project's budget (``srs.research.surface.DPSurface`` documents the methods)."""

    def __init__(self, session: ResearchSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<DP queries for {self._session.project}: {', '.join(self.QUERIES)}>"

    def _query(self, statistic: Any, arguments: tuple, options: dict[str, Any]) -> Any:
        from disclosure import dp

        if isinstance(statistic, dp.DPQuery):
            if options:
                raise SessionError(
                    f"a built query takes no further options ({', '.join(sorted(options))}): "
                    "give them to the query's constructor"
                )
            return statistic
        if statistic not in self.QUERIES:
            raise SessionError(
                f"{statistic!r} is not a DP query; use one of {', '.join(self.QUERIES)}"
            )
        return getattr(dp, statistic)(*arguments, **options)

    def _reading(self, dataset: Any, options: dict[str, Any]) -> dict[str, Any]:
        """What to read: the dataset's name (a frame is refused, with how to write the query
        instead) and the ``version``, ``where`` and ``derive`` popped from ``options``."""
        from disclosure.dp.selection import refuse_frame

        session = self._session
        return {
            "vault": session._vault,
            "project_code": session.project,
            "researcher": session.user,
            "policies": session._policies,
            "dataset": refuse_frame(dataset),
            "synthetic": session.source == SYNTHETIC,
            **{key: options.pop(key, None) for key in self.READING},
        }

    def _release(
        self,
        statistic: str,
        dataset: Any,
        arguments: tuple,
        options: dict[str, Any],
    ) -> pd.DataFrame:
        from output_checking.dp_release import release_dp

        reading = self._reading(dataset, options)
        rho = options.pop("rho", None)
        accuracy = options.pop("accuracy", None)
        name = options.pop("name", None)
        context = options.pop("context", "")
        query = self._query(statistic, arguments, options)
        session = self._session
        with session._registry.sessions() as db:
            name = session._unique_name(db, name or f"DP {query.describe()}")
            released = release_dp(
                db,
                query=query,
                rho=rho,
                accuracy=accuracy,
                name=name,
                context=session._context(context),
                datasets_used=session._datasets_read,
                **reading,
            )
            output = get_output(db, released.output_id)
            session._note_reads(output.datasets_used)
            summary = OutputSummary.of(output)
        session.last_output = summary
        table = released.result.table.copy()
        table.attrs["srs_dp"] = _spend_attrs(released.receipt, notes=list(released.result.notes))
        return session._tagged(table, summary)

    def count(self, dataset: str, **options: Any) -> pd.DataFrame:
        return self._release("count", dataset, (), options)

    def sum_of(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        return self._release("sum_of", dataset, (column,), options)

    def mean(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        return self._release("mean", dataset, (column,), options)

    def variance(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        return self._release("variance", dataset, (column,), options)

    def quantiles(
        self, dataset: str, column: str, qs: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        return self._release("quantiles", dataset, (column, qs), options)

    def median(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        return self._release("median", dataset, (column,), options)

    def histogram(
        self, dataset: str, column: str, edges: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        return self._release("histogram", dataset, (column, edges), options)

    def crosstab(self, dataset: str, *columns: str, **options: Any) -> pd.DataFrame:
        return self._release("crosstab", dataset, columns, options)

    def synthetic(
        self,
        dataset: str,
        columns: Sequence[str],
        *,
        rows: int,
        rho: float,
        algorithm: str = "mst",
        bins: int | None = None,
        seed: int | None = None,
        version: int | None = None,
        where: Sequence[Any] | None = None,
        derive: dict[str, Any] | None = None,
        name: str | None = None,
        context: str = "",
    ) -> pd.DataFrame:
        from output_checking.dp_release import release_dp_replica

        reading = self._reading(dataset, {"version": version, "where": where, "derive": derive})
        session = self._session
        with session._registry.sessions() as db:
            name = session._unique_name(
                db, name or f"DP synthetic replica of {reading['dataset']} ({', '.join(columns)})"
            )
            released = release_dp_replica(
                db,
                columns=list(columns),
                rows=rows,
                rho=rho,
                algorithm=algorithm,
                bins=bins,
                seed=seed,
                name=name,
                context=session._context(context),
                datasets_used=session._datasets_read,
                **reading,
            )
            output = get_output(db, released.output_id)
            session._note_reads(output.datasets_used)
            summary = OutputSummary.of(output)
        session.last_output = summary
        table = released.data
        table.attrs["srs_dp"] = _spend_attrs(released.receipt, algorithm=algorithm)
        return session._tagged(table, summary)

    def preview(
        self,
        dataset: str,
        query: Any,
        *arguments: Any,
        rho: float | None = None,
        accuracy: float | None = None,
        **options: Any,
    ) -> Any:
        from output_checking.dp_release import preview_dp

        reading = self._reading(dataset, options)
        built = self._query(query, arguments, options)
        with self._session._registry.sessions() as db:
            return preview_dp(db, query=built, rho=rho, accuracy=accuracy, **reading)

    def budget(self) -> BudgetState:
        with self._session._registry.sessions() as db:
            return budget_state(db, self._session.project, self._session._policies)
