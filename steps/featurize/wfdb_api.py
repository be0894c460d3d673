"""The one door to `wfdb`'s header internals: every private name this project uses, imported here.

`wfdb.io._header` is not public API (its leading underscore says so), but the fast header
parser (`steps/featurize/headers.py`) and the master-header reader (`steps/featurize/summary.py`)
must parse exactly as wfdb does, with its own regular expressions, record-line parser and field
specification. A `wfdb` release that moves or changes these breaks this module at import, and
`tests/steps/featurize/test_wfdb_api.py` (which pins the versions it was checked against) says
which name, instead of a wrong parse somewhere downstream.
"""

from __future__ import annotations

import wfdb
from wfdb.io._header import SIGNAL_SPECS, _parse_record_line, float_types, int_types
from wfdb.io.header import HeaderSyntaxError, parse_header_content, rx_segment, rx_signal

# The wfdb releases these names were checked against (steps/requirements.txt pins one of them).
CHECKED_VERSIONS = ("4.3",)
VERSION = wfdb.__version__

parse_record_line = _parse_record_line

__all__ = ["CHECKED_VERSIONS", "HeaderSyntaxError", "SIGNAL_SPECS", "VERSION", "float_types", "int_types",
           "parse_header_content", "parse_record_line", "rx_segment", "rx_signal"]
