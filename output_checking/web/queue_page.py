"""The queue, where a checker starts: the requests they may review (never their own projects')."""

from __future__ import annotations

import tornado.web

from output_checking.web.base import CheckerHandler
from output_checking.workflow import checker_queue


class RootHandler(CheckerHandler):
    """The UI's root: the queue is where a checker starts."""

    def get(self) -> None:
        self.redirect(self.srs.url("queue"))


class QueueHandler(CheckerHandler):
    """Requests awaiting review that this checker may review (never their own projects')."""

    @tornado.web.authenticated
    def get(self) -> None:
        everything = self.get_argument("all", "") == "1"
        entries = checker_queue(
            self.db, checker=self.checker, policies=self.srs.policies, include_decided=everything
        )
        self.db.commit()  # the access decision is on record
        self.render_page(
            "queue.html",
            entries=entries,
            everything=everything,
            reviews_needed=self.srs.policies.release.independent_reviews,
        )
