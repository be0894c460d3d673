"""What a feature function receives and returns: a discovered record and its result rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

ERROR_KINDS = (
    "missing_header",  # a master lists a segment whose header is absent
    "header_parse_error",  # a header that wfdb cannot parse
    "unknown_format",  # a storage format WFDB does not define
    "zero_samples",  # no signals or no samples (a master with only gaps, a 0-length segment)
    "missing_data_file",
    "truncated_data_file",  # data file shorter than its header declares
    "header_data_mismatch",  # data file longer than declared, checksum or segment lengths disagree
    "limit_exceeded",  # a header asks for more than a worker allows (steps/featurize/limits.py)
    "unsafe_path",  # a header or data file that resolves outside the input folder
    "no_result",  # a record or header that yielded neither rows nor an error row (steps/featurize/accounting.py)
    "fetch_error",  # read_mode stream: an object missing, changed since indexed, or throttled past the retries
    "read_error",  # anything else the reader raised
    "feature_function_error",  # a user feature function raised
)
ERROR_COLUMNS = ("group", "record", "segment", "file", "kind", "message")


@dataclass(frozen=True)
class RecordRef:
    """One WFDB record found under the input folder; paths are relative to `root`.

    kind: `multi` (a master header listing segments), `single` (one header with its data) or
    `segments` (segment headers whose master is absent: `segments` names them, in order)."""

    root: str
    header: str
    group: str
    record: str
    kind: str
    is_numerics: bool = False
    segments: tuple[str, ...] = ()
    bytes: int = 0
    samples: int = 0  # estimated from file sizes and formats: the work this record takes

    @property
    def artifact(self) -> str:
        """The folder holding the record: the artifact id both in Reconcile's copy
        (`reconciled_artifacts/<id>/`) and in the raw layouts (`30/3000003/`, `p00/p000878/`),
        so numerics records (`3000003n`) and renamed matched-subset masters join their artifact."""
        return PurePosixPath(self.header).parent.name or self.record

    @property
    def directory(self) -> Path:
        return Path(self.root) / Path(self.header).parent

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.group, self.record, self.header)


class RecordError(Exception):
    """Raise from a feature function to turn a whole record into one error row of this kind."""

    def __init__(self, kind: str, message: str, segment: str = "", file: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.segment = segment
        self.file = file


@dataclass
class FeatureResult:
    """Rows and error rows of one record. A record with any error row counts as failed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0

    def error(self, record: RecordRef, kind: str, message: str, segment: str = "", file: str = "") -> None:
        self.errors.append(error_row(record, kind, message, segment, file))


def error_row(record: RecordRef, kind: str, message: str, segment: str = "", file: str = "") -> dict[str, Any]:
    return {
        "group": record.group,
        "record": record.record,
        "segment": segment,
        "file": file or record.header,
        "kind": kind,
        "message": message,
    }
