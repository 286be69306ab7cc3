"""An output's files, for its checkers only: a PNG shown inline, anything else downloaded (and
the download audited)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import tornado.web

from output_checking.outputs import OutputError, get_output
from output_checking.web.base import ReviewHandler
from output_checking.web.output_layout import INLINE_TYPES
from output_checking.workflow import request_target
from srs.governance.audit import record_event


class FileHandler(ReviewHandler):
    """An output file, for its checkers only: PNG shown inline, anything else downloaded."""

    @tornado.web.authenticated
    def get(self, output_id: str, name: str) -> None:
        output = get_output(self.db, int(output_id))
        if output.request_id is None:
            raise OutputError(f"output #{output_id} has not been submitted for review")
        view = self.checker_view(output.request_id)
        if output.id not in {o.output.id for o in view.outputs}:
            raise OutputError(f"output #{output_id} was removed from request #{view.request.id}")
        stored = next((f for f in output.files if f.name == name), None)
        if stored is None:
            raise tornado.web.HTTPError(404, "output #%s has no file %s", output_id, name)
        download = self.get_argument("download", "") == "1"
        inline_type = INLINE_TYPES.get(Path(name).suffix.lower())
        if download or inline_type is None:
            record_event(
                self.db,
                actor=self.checker,
                action="output.download",
                target=request_target(output.request_id),
                outcome="ok",
                details={"output_id": output.id, "file": name, "sha256": stored.sha256},
            )
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        else:
            self.set_header("Content-Type", inline_type)
        self.db.commit()
        self.finish(stored.content)
