"""srs.research: what a researcher works with.

- ``surface``: the one list of session and DP methods, their signatures and docstrings, that
  the local session implements and the hub's remote session and API allow-list are derived from.
- ``values``: what both transports return (``OutputSummary``, ``RequestStatus``) and
  ``SessionError``.
- ``drafts``: pure functions that turn frames into checked drafts (tables, models, survival,
  histograms, custom outputs) with their disclosure evidence.
- ``session``: ``ResearchSession``, the session that runs in the environment (checked outputs
  recorded for the project), and ``open_session`` which starts one after the access check.
- ``dp``: ``DifferentialPrivacy`` (``s.dp``), DP queries paid from the project's budget.
- ``practice``: practice sessions on the open synthetic data, in a throwaway deployment.
- ``notebook_runs``: notebooks run unchanged on synthetic and on vault data (papermill).

``srs.session()`` (``srs/session.py``) picks this local session or the hub's remote one.
"""
