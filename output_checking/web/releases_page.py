"""Releases: releasing an approved request as a signed bundle, and the release history with the
approved requests waiting to be released."""

from __future__ import annotations

import tornado.web
from sqlalchemy import select

from output_checking.release import create_release, list_releases
from output_checking.web.base import CheckerHandler, ReviewHandler
from output_checking.workflow import APPROVED, checker_queue
from srs.governance.registry.models import Project


class ReleaseHandler(ReviewHandler):
    """Release an approved request as a signed bundle (``output_checking.release``)."""

    @tornado.web.authenticated
    def post(self, request_id: str) -> None:
        self.attempt(
            lambda: create_release(
                self.db,
                request_id=int(request_id),
                actor=self.checker,
                policies=self.srs.policies,
                deployment=self.srs.deployment,
            ),
            "Released as bundle {result.bundle_name} ({result.file_count} files).",
            self.srs.url("releases"),
        )


class ReleasesHandler(CheckerHandler):
    """Release history, and the approved requests waiting to be released."""

    @tornado.web.authenticated
    def get(self) -> None:
        # The queue's access check (checker role) guards this page too.
        waiting = [
            entry
            for entry in checker_queue(
                self.db, checker=self.checker, policies=self.srs.policies, include_decided=False
            )
            if entry.status == APPROVED
        ]
        releases = list_releases(self.db)
        codes = {pid: code for pid, code in self.db.execute(select(Project.id, Project.code))}
        self.db.commit()
        self.render_page("releases.html", releases=releases, waiting=waiting, codes=codes)
