"""A request's page: its outputs with their evidence, votes, comments, its history and the
decision forms."""

from __future__ import annotations

import json

import tornado.web

from output_checking.web.base import ReviewHandler
from output_checking.web.output_layout import output_page
from output_checking.workflow import APPROVED, DECISIONS, UNDER_REVIEW

MAX_FINDINGS_SHOWN = 50


def _event_details(details: str) -> str:
    try:
        decoded = json.loads(details)
    except ValueError:
        return details
    if not decoded:
        return ""
    if {"from", "to"} <= decoded.keys():
        return f"{decoded['from']} \u2192 {decoded['to']}"
    return ", ".join(f"{k}: {v}" for k, v in decoded.items() if k != "project")


class RequestHandler(ReviewHandler):
    """One request: outputs with evidence, votes, comments, history and the decision forms."""

    @tornado.web.authenticated
    def get(self, request_id: str) -> None:
        view = self.checker_view(int(request_id))
        pages = [output_page(o, self.srs.policies) for o in view.outputs]
        self.db.commit()  # the access decision (and any refreshed evidence) is on record
        self.render_page(
            "request.html",
            view=view,
            request=view.request,
            pages=pages,
            history=view.history,
            voting_open=view.request.status in UNDER_REVIEW,
            can_release=view.request.status == APPROVED and view.release is None,
            decisions=DECISIONS,
            max_findings=MAX_FINDINGS_SHOWN,
            small_count=self.srs.policies.sdc.active.minimum_cell_count,
            event_details=_event_details,
            reviews_needed=view.reviews_needed,
        )
