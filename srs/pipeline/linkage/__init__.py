"""Person linkage with Splink: standardise identifiers, train, predict, cluster, evaluate.

Works on any two or more tables given a column mapping (which column plays each linkage role,
plus any other identifiers with their comparison method); for our sources the mapping comes
from the data dictionaries' ``linkage_role``. Settings are declarative
(``policies/linkage.yaml``). The result is a lookup from every source record to a cluster of
records that are the same person; keyed pseudonyms are made from it by ``srs.pipeline.deid``.
All of this runs in the steward zone: inputs carry direct identifiers.

The names below are the package's interface; its modules, lowest first: ``errors``,
``roles`` (mappings), ``cleaning`` (one column's values), ``settings``, ``model`` (Splink's
comparisons), ``backends`` (DuckDB, Spark), ``blocking``, ``identifiers`` (added
identifiers), ``standardisation``, ``training``, ``link`` (train, predict, cluster),
``incremental`` (new records scored against the persons held), ``person_keys`` (which key
each person carries across relinks), ``evaluation`` (against a ground truth) and ``review``
(clerical review).
"""

from srs.pipeline.linkage.backends import (
    SPARK_CHECKPOINT_VARIABLE,
    SPARK_MASTER_VARIABLE,
    database_api,
)
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.evaluation import LinkageQuality, evaluate
from srs.pipeline.linkage.identifiers import identifier_comparisons
from srs.pipeline.linkage.incremental import refresh_clusters
from srs.pipeline.linkage.link import LinkageResult, link_tables, run_splink
from srs.pipeline.linkage.model import splink_settings
from srs.pipeline.linkage.person_keys import KeyReconciliation, reconcile_person_keys
from srs.pipeline.linkage.review import clerical_sample
from srs.pipeline.linkage.roles import (
    IDENTIFIER_METHODS,
    LINKAGE_COLUMNS,
    MappedIdentifier,
    SourceMapping,
    mapping_from_dictionary,
    read_mapping_file,
)
from srs.pipeline.linkage.settings import (
    ClericalReviewSpec,
    ComparisonBudgetSpec,
    ComparisonSpec,
    LinkageSettings,
    MissingValuesSpec,
    StandardisationSpec,
    TrainingSpec,
    load_linkage_settings,
    override_settings,
    read_settings_file,
)
from srs.pipeline.linkage.standardisation import standardise

__all__ = [
    "IDENTIFIER_METHODS",
    "LINKAGE_COLUMNS",
    "SPARK_CHECKPOINT_VARIABLE",
    "SPARK_MASTER_VARIABLE",
    "ClericalReviewSpec",
    "ComparisonBudgetSpec",
    "ComparisonSpec",
    "KeyReconciliation",
    "LinkageError",
    "LinkageQuality",
    "LinkageResult",
    "LinkageSettings",
    "MappedIdentifier",
    "MissingValuesSpec",
    "SourceMapping",
    "StandardisationSpec",
    "TrainingSpec",
    "clerical_sample",
    "database_api",
    "evaluate",
    "identifier_comparisons",
    "link_tables",
    "load_linkage_settings",
    "mapping_from_dictionary",
    "override_settings",
    "read_mapping_file",
    "read_settings_file",
    "reconcile_person_keys",
    "refresh_clusters",
    "run_splink",
    "splink_settings",
    "standardise",
]
