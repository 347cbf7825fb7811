"""Mapping files: templates, validation messages with file:line, and the shipped layouts (no Spark)."""

from __future__ import annotations

import pytest

from cohortlake.errors import UserError
from cohortlake.sources.mapping import expand, known_layouts, load_mapping


def test_expand_ranges_keep_zero_padding():
    assert expand("DGNS_{1..3}_CD") == ["DGNS_1_CD", "DGNS_2_CD", "DGNS_3_CD"]
    assert expand("HMO_IND_{01..12}")[:2] == ["HMO_IND_01", "HMO_IND_02"]
    assert expand("HMO_IND_{01..12}")[-1] == "HMO_IND_12"
    assert expand("PATIENT_ID") == ["PATIENT_ID"]


def test_shipped_layouts_load():
    assert known_layouts() == ["desynpuf", "seer-medicare"]
    seer = load_mapping("seer-medicare")
    required, optional = seer.columns_used("medpar")
    assert {"PATIENT_ID", "MEDPAR_ID", "ADMSN_DT"} <= required
    assert "DGNS_25_CD" in optional and "SRGCL_PRCDR_PRFRM_25_DT" in optional
    # the revenue line's fallback date comes from the claim header, not from the line file
    assert "CLM_FROM_DT" not in seer.columns_used("outpatient_revenue")[0]
    assert "CLM_FROM_DT" in seer.columns_used("outpatient_base")[0]


def test_unknown_layout_lists_known_ones():
    with pytest.raises(UserError, match="unknown layout 'optum'.*desynpuf, seer-medicare"):
        load_mapping("optum")


def test_bad_mapping_file_names_file_line_and_field(tmp_path):
    text = (load_mapping.__globals__["MAPPINGS"] / "seer-medicare.yaml").read_text()
    broken = text.replace('hmo: {column: "HMO_IND_{01..12}", not_in: ["0", "4"]}',
                          'hmo: {column: "HMO_IND_{01..12}", not_inn: ["0", "4"]}')
    path = tmp_path / "mine.yaml"
    path.write_text(broken)
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if "not_inn" in l)
    with pytest.raises(UserError) as err:
        load_mapping(str(path))
    assert f"{path}:{line}: enrollment.0.monthly.hmo.not_inn: unknown field" in str(err.value)


def test_feed_from_undeclared_raw_table_is_refused(tmp_path):
    text = (load_mapping.__globals__["MAPPINGS"] / "desynpuf.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("- from: prescription_drug_events", "- from: pharmacy_claims"))
    with pytest.raises(UserError, match="raw table 'pharmacy_claims' is not declared"):
        load_mapping(str(path))


def test_yaml_syntax_error_has_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layout: x\nraw: [unclosed\n")
    with pytest.raises(UserError, match=rf"{path}:\d+: not valid YAML"):
        load_mapping(str(path))
