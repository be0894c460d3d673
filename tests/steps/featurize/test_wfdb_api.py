"""`steps/featurize/wfdb_api.py`: the private wfdb names the featurizer relies on exist, behave as
the parsers expect, and belong to a wfdb release they were checked against."""

from __future__ import annotations

import re

import pytest

from steps.featurize import wfdb_api


def test_the_installed_wfdb_is_one_the_adapter_was_checked_against():
    major_minor = ".".join(wfdb_api.VERSION.split(".")[:2])
    assert major_minor in wfdb_api.CHECKED_VERSIONS, (
        f"wfdb {wfdb_api.VERSION}: check steps/featurize/wfdb_api.py's private names against it "
        "(this test and tests/steps/featurize/test_featurize.py), then add it to CHECKED_VERSIONS")


def test_the_requirements_pin_a_checked_wfdb():
    from pipeline.build.wheelhouse import REQUIREMENTS

    pinned = re.search(r"^wfdb==([\d.]+)", REQUIREMENTS.read_text(), re.M)
    assert pinned and ".".join(pinned.group(1).split(".")[:2]) in wfdb_api.CHECKED_VERSIONS


def test_record_line_and_signal_specification():
    fields = wfdb_api.parse_record_line("100 2 360 650000")
    assert (fields["record_name"], fields["n_sig"], fields["fs"], fields["sig_len"]) == ("100", 2, 360, 650000)
    assert {"fmt", "adc_gain", "baseline", "units", "sig_name"} <= set(wfdb_api.SIGNAL_SPECS.index)
    assert {"read_default", "allowed_types"} <= set(wfdb_api.SIGNAL_SPECS.columns)
    assert int in wfdb_api.int_types and float in wfdb_api.float_types


def test_regular_expressions_and_content_split():
    assert wfdb_api.rx_signal.match("100.dat 212 200 11 1024 995 -22131 0 MLII").group("file_name") == "100.dat"
    assert wfdb_api.rx_segment.match("seg_0001 7500").group("seg_name") == "seg_0001"
    lines, comments = wfdb_api.parse_header_content("100 1 360 10\n100.dat 212 200 11 1024 995 0 0 II\n# age 69\n")
    assert len(lines) == 2 and comments == ["# age 69"]
    with pytest.raises(wfdb_api.HeaderSyntaxError):
        raise wfdb_api.HeaderSyntaxError("raised and caught by its public name")
