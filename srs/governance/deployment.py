"""Where a deployment lives: its home folder, database URL, master-key file and vault folder.

Everything is resolved from the environment (``SRS_HOME``, ``SRS_DATABASE_URL``,
``SRS_POLICY_DIR``) with embedded defaults, so the CLI, the demo and the tests agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "SRS_HOME"
DATABASE_URL_ENV = "SRS_DATABASE_URL"
DEFAULT_HOME = Path("srs-home")


@dataclass(frozen=True)
class Deployment:
    """The folders and URL of one deployment of the environment.

    Example::

        deployment = Deployment.from_env()          # ./srs-home with SQLite by default
        deployment = Deployment.at("/srv/srs")      # explicit home
    """

    home: Path
    database_url: str

    @classmethod
    def at(cls, home: Path | str, database_url: str | None = None) -> Deployment:
        """A deployment rooted at ``home``; SQLite in the home folder unless a URL is given."""
        home = Path(home).resolve()
        url = database_url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home / 'srs.db'}"
        return cls(home=home, database_url=url)

    @classmethod
    def from_env(cls, home: Path | str | None = None) -> Deployment:
        """The deployment named by ``home``, else ``SRS_HOME``, else ``./srs-home``."""
        return cls.at(home or os.environ.get(HOME_ENV) or DEFAULT_HOME)

    @property
    def key_file(self) -> Path:
        """The master-key file (mode 0600), used when ``SRS_MASTER_KEY`` is not set."""
        return self.home / "master.key"

    @property
    def next_key_file(self) -> Path:
        """Where a key rotation writes the new master key before it replaces the old one."""
        return self.home / "master.key.next"

    @property
    def vault_dir(self) -> Path:
        """The folder holding the encrypted dataset files."""
        return self.home / "vault"

    @property
    def marker_file(self) -> Path:
        """Written by ``srs init``; its presence says the folder is a deployment."""
        return self.home / "DEPLOYMENT"

    def is_initialised(self) -> bool:
        """True once ``srs init`` has run here."""
        return self.marker_file.exists()
