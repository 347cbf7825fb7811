"""Test patients ("assure"): tiny person timelines stored beside a definition, with the result expected for each.

``cohortlake assure cohort_defs/X.yaml`` reads ``cohort_defs/tests/X.yaml``, turns every
test patient into canonical (silver) rows, builds the cohort with the Spark engine and
prints one line per patient: PASS or FAIL, its id and description, and for a failure
each expected value next to the one the engine produced.

The test file
-------------
::

    definition: ../X.yaml          # optional; default: the file of the same name one folder up
    templates:                     # optional; named timelines that patients start from
      base:
        person: {birth_date: 1935-06-01, sex: male, race: white}
        death: 2010-01-20
        tumors: [{sequence_number: "00", diagnosis_year: 2009, diagnosis_month: 3, ...}]
        enrollment: [{coverage: [part_a, part_b, part_d], start: 2008-01-01, end: 2011-12-31}]
        diagnoses: [{date: 2009-03-01, code: "571.5"}]
        procedures: [{date: 2009-03-20, code: "47120", setting: outpatient}]
        fills: [{date: 2009-03-20, ndc: "50419-488-58", generic_name: SORAFENIB, days_supply: 30}]
      treated: {like: base, add: {fills: [...]}}     # a template may start from another
    patients:
      - id: sorafenib_day_60       # becomes the person_id; letters, digits, _ - .
        description: First fill on day +60 (last day of the window) is treated
        like: base                 # start from a template ...
        set: {death: null}         # ... replace whole keys (null clears death) ...
        add: {fills: [...]}        # ... and append to its lists
        expect: {included: true, arm: sorafenib, first_exposure_date: 2009-05-14}
      - id: written_out            # or give the timeline keys directly, without like
        person: {...}
        expect: {excluded_at: HCC tumor}

Timeline keys (each optional except ``person``):

- ``person``: ``birth_date`` (a date, or null for none), ``sex``, ``race`` (the
  definition language's values).
- ``death``: the death date, or null.
- ``tumors``: registry rows: ``sequence_number`` (quoted, two digits) and optionally
  ``diagnosis_year``, ``diagnosis_month`` (a number; 99 or null = unknown),
  ``primary_site`` (``C22.0`` or ``C220``), ``histology`` (quoted, ``"8170"``),
  ``behavior``, ``historic_stage``, ``reporting_source`` (a name such as ``malignant``,
  ``distant``, ``autopsy_only``, or the registry code as quoted text), ``death_year``,
  ``death_month``. A field left out is missing (null).
- ``enrollment``: spans ``{coverage, start, end}`` (inclusive); ``coverage`` is one of
  part_a, part_b, part_d, hmo, dual, retiree_drug_subsidy, or a list of them (one span
  each). Fee-for-service is not stored: it is every day without an ``hmo`` span.
- ``diagnoses``: ``{date, code}`` and optionally ``system`` (default icd9cm before
  2015-10-01, icd10cm from then), ``setting`` (inpatient, outpatient, carrier; default
  carrier), ``claim_id`` (default: one claim per row).
- ``procedures``: like diagnoses; ``system`` defaults to hcpcs for a five-character code,
  else icd9pcs before 2015-10-01 and icd10pcs from then.
- ``fills``: ``{date, ndc}`` and optionally ``generic_name``, ``brand_name``,
  ``days_supply`` (null = missing), ``quantity``, ``claim_id``.

Codes are written as in code sets (quoted, dots optional); they are stored without dots,
in upper case, NDCs as 11 digits.

``expect`` is one of:

- ``{excluded_at: <criterion name>}``: the person leaves the cohort at that attrition
  step (a person without an index leaves at step 1);
- ``{included: true, <column>: <value>, ...}``: the person is in the cohort and each
  listed column has the value (null = empty); unlisted columns are not checked.
  ``events: [{start_day, stop_day, event, <time-varying covariate>: 0|1}, ...]`` lists
  every start/stop row of the person, in order (only the listed columns are checked);
- ``{rows: [...]}`` for definitions whose index is ``each``: one entry per episode, each
  with its ``index_date`` and either ``excluded_at`` or ``included: true`` plus columns.
Where each part lives: ``model`` (the file's pydantic model, checked against the
definition's output contract), ``load`` (file → suite, every problem located),
``timeline`` (timelines → canonical rows → frames), ``compare`` (expected vs built, the
report) and ``run`` (the Spark runner).
"""

from cohortlake.assure.compare import AssureReport, EngineRows, PatientResult, compare
from cohortlake.assure.load import (
    AssureFileError,
    AssurePatient,
    AssureSuite,
    default_tests_path,
    load_suite,
    patient_rows,
)
from cohortlake.assure.expect import ExpectedRow
from cohortlake.assure.run import engine_rows, load, run_assure, run_suite
from cohortlake.assure.timeline import frames_from_rows, timeline_rows


__all__ = [
    "AssureFileError", "AssurePatient", "AssureReport", "AssureSuite", "EngineRows", "ExpectedRow", "PatientResult",
    "compare", "default_tests_path", "engine_rows", "frames_from_rows", "load", "load_suite", "patient_rows",
    "run_assure", "run_suite", "timeline_rows",
]
