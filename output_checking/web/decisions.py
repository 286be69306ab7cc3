"""A checker's decisions on a request: a vote on one output (with its comment and any
differencing override) and a comment on the whole request, each a form that redirects back."""

from __future__ import annotations

from typing import Any

import tornado.web

from output_checking.outputs import OutputError, get_output
from output_checking.web.base import ReviewHandler
from output_checking.workflow import comment_on_request, vote


class VoteHandler(ReviewHandler):
    """A checker's decision on one output, with an optional comment and its visibility."""

    @tornado.web.authenticated
    def post(self, request_id: str, output_id: str) -> None:
        decision = self.get_body_argument("decision", "")
        back = self.srs.url("requests", request_id) + f"#output-{output_id}"

        def cast() -> Any:
            output = get_output(self.db, int(output_id))
            if output.request_id != int(request_id):
                raise OutputError(f"output #{output_id} is not in request #{request_id}")
            return vote(
                self.db,
                output_id=output.id,
                checker=self.checker,
                policies=self.srs.policies,
                decision=decision,
                comment=self.get_body_argument("comment", ""),
                comment_visibility=self.get_body_argument("visibility", "checkers"),
                override_reason=self.get_body_argument("override_reason", "").strip() or None,
            )

        label = decision.replace("_", " ")
        self.attempt(cast, f"Your decision on output #{output_id} is recorded: {label}.", back)


class CommentHandler(ReviewHandler):
    """A checker's comment on a whole request."""

    @tornado.web.authenticated
    def post(self, request_id: str) -> None:
        self.attempt(
            lambda: comment_on_request(
                self.db,
                request_id=int(request_id),
                actor=self.checker,
                policies=self.srs.policies,
                text=self.get_body_argument("text", ""),
                visibility=self.get_body_argument("visibility", "checkers"),
            ),
            "Your comment is recorded.",
            self.srs.url("requests", request_id) + "#comments",
        )
