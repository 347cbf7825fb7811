"""The reference cohort on synthetic data, checked rule by rule with plain pandas.

The check below is written from docs/reference-study.md alone (not from the
engine or cohort_defs/README.md): for every person with a liver tumor it decides each of
the twelve rules, the arm and the follow-up, and the engine's cohort and attrition must
be exactly that.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from datetime import date, timedelta

import pandas as pd
import pytest

pytestmark = pytest.mark.spark

REFERENCE = "hcc_sorafenib_landmark"
STUDY_END = date(2013, 12, 31)

# The study's code-set table, as plain predicates on stored codes (no dots).
THERAPY_HCPCS = {"47120", "47122", "47125", "47130", "47135", "47370", "47371", "47380", "47381", "47382",
                 "37204", "37243", "75894", "S2095", "77371", "77372", "77373", "77418",
                 *(str(c) for c in range(77401, 77417))}
THERAPY_ICD9PCS = {"5022", "503", "5051", "5059", "5023", "5024", "5025", "5026"}


def is_therapy(code: str, system: str) -> bool:
    if system == "hcpcs":
        return code in THERAPY_HCPCS
    if system == "icd9pcs":
        return code in THERAPY_ICD9PCS or code.startswith("922")
    if system == "icd9cm":
        return code == "V580"
    return False


def is_sorafenib(ndc, generic) -> bool:
    return ndc == "50419048858" or (isinstance(generic, str) and "sorafenib" in generic.lower())


def month_shift(day: date, months: int) -> tuple[int, int]:
    index = day.year * 12 + day.month - 1 + months
    return index // 12, index % 12 + 1


def month_days(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def covered(spans, first: date, last: date) -> bool:
    return any(s <= first and e >= last for s, e in spans)


def touches(spans, first: date, last: date) -> bool:
    return any(s <= last and e >= first for s, e in spans)


def reference_rules(tables: dict[str, pd.DataFrame]):
    """(steps passed per person, included persons' expected values) from the study text."""
    by_person = {name: dict(tuple(frame.groupby("person_id"))) for name, frame in tables.items()}
    persons = set(tables["person"]["person_id"]) | set(tables["tumor"]["person_id"])
    depth, expected = {}, {}
    for pid in sorted(persons):
        def rows(table):
            return by_person[table].get(pid, tables[table].iloc[0:0])

        tumors = rows("tumor")
        hcc = tumors[(tumors.primary_site == "C220") & tumors.histology.isin([str(h) for h in range(8170, 8176)])
                     & (tumors.behavior == "3")].sort_values("sequence_number")
        passed = 0
        checks = []
        if len(hcc):
            t = hcc.iloc[0]
            person = rows("person")
            birth = person.iloc[0].birth_date if len(person) else None
            deaths = rows("death")
            death = deaths.iloc[0].death_date if len(deaths) else None
            month_known = pd.notna(t.diagnosis_month) and 1 <= t.diagnosis_month <= 12 and pd.notna(t.diagnosis_year)
            dx = date(int(t.diagnosis_year), int(t.diagnosis_month), 15) if month_known else None
            enrollment = rows("enrollment")
            spans = {c: list(zip(g.start_date, g.end_date)) for c, g in enrollment.groupby("coverage")}

            def months_ok(lo, hi, need, forbid):
                for m in range(lo, hi + 1):
                    y, mo = month_shift(dx, m)
                    if death is not None and (y, mo) > (death.year, death.month):
                        continue
                    first, last = month_days(y, mo)
                    if not all(covered(spans.get(c, []), first, last) for c in need):
                        return False
                    if any(touches(spans.get(c, []), first, last) for c in forbid):
                        return False
                return True

            def age():
                years = dx.year - birth.year - ((dx.month, dx.day) < (birth.month, birth.day))
                return years

            events = pd.concat([rows("procedure"), rows("diagnosis")])
            fills = rows("dispensing")
            sorafenib = sorted(d for d, n, g in zip(fills.date, fills.ndc, fills.generic_name) if is_sorafenib(n, g))
            checks = [
                lambda: True,
                lambda: t.sequence_number in ("00", "01"),
                lambda: month_known and 2008 <= t.diagnosis_year <= 2011,
                lambda: pd.notna(t.reporting_source) and t.reporting_source not in ("6", "7"),
                lambda: t.historic_stage in ("2", "4"),
                lambda: birth is not None and pd.notna(birth) and age() >= 66,
                lambda: death is None or death >= dx,
                lambda: months_ok(-12, 2, ["part_a", "part_b"], ["hmo"]),
                lambda: months_ok(0, 2, ["part_d"], ["retiree_drug_subsidy"]),
                lambda: not any(
                    dx - timedelta(30) <= d <= dx + timedelta(60) and is_therapy(c, s)
                    for d, c, s in zip(events.date, events.code, events.code_system)
                ),
                lambda: not any(dx - timedelta(365) <= d <= dx - timedelta(1) for d in sorafenib),
                lambda: death is None or death > dx + timedelta(60),
            ]
            for check in checks:
                if not check():
                    break
                passed += 1
            if passed == len(checks):
                first = next((d for d in sorafenib if dx <= d <= dx + timedelta(60)), None)
                landmark = dx + timedelta(60)
                end = min(death, STUDY_END) if death is not None else STUDY_END
                expected[pid] = {
                    "index_date": dx, "arm": "sorafenib" if first else "untreated", "first_exposure_date": first,
                    "landmark_date": landmark, "followup_start": landmark, "followup_end": end,
                    "event": int(death is not None and death <= STUDY_END), "time_days": (end - landmark).days,
                    "age": age(),
                }
        depth[pid] = passed
    return depth, expected


@pytest.fixture(scope="module")
def reference_build(demo_run, spark):
    from cohortlake.lake.delta import Lakehouse

    lake_dir, _ = demo_run
    lake = Lakehouse(str(lake_dir), spark)
    tables = {
        name: lake.read(f"silver/{name}").toPandas()
        for name in ("person", "death", "enrollment", "tumor", "procedure", "diagnosis", "dispensing")
    }
    cohort = lake.read(f"cohorts/{REFERENCE}/cohort").toPandas()
    attrition = lake.read(f"cohorts/{REFERENCE}/attrition").toPandas().sort_values("step")
    return lake_dir, tables, cohort, attrition


def test_reference_cohort_is_exactly_what_the_study_rules_select(reference_build):
    _, tables, cohort, attrition = reference_build
    depth, expected = reference_rules(tables)
    assert len(expected) >= 20, "too few persons pass to test anything; raise the demo's patients"
    assert sorted(cohort.person_id) == sorted(expected)
    both = {row.person_id: row for row in cohort.itertuples()}
    arms = {"sorafenib": 0, "untreated": 0}
    for pid, want in expected.items():
        got = both[pid]
        for column, value in want.items():
            actual = getattr(got, column)
            actual = None if pd.isna(actual) else actual
            assert actual == value, f"{pid} {column}: engine {actual}, study rules {value}"
        arms[want["arm"]] += 1
    assert arms["sorafenib"] > 0 and arms["untreated"] > 0

    # attrition: persons remaining after each rule, step 0 = everyone in the data
    remaining = [sum(1 for d in depth.values() if d >= k) for k in range(1, 13)]
    assert list(attrition.persons_remaining)[1:] == remaining
    # the population: everyone in the person table plus anyone the index rule finds
    population = set(tables["person"].person_id) | {pid for pid, d in depth.items() if d >= 1}
    assert attrition.persons_remaining.iloc[0] == len(population)
    assert list(attrition.step) == list(range(13))
    assert (attrition.persons_excluded.iloc[1:].values
            == attrition.persons_remaining.iloc[:-1].values - attrition.persons_remaining.iloc[1:].values).all()


def test_every_rule_excludes_someone_on_synthetic_data(reference_build):
    """Otherwise the comparison above could not tell a broken rule from a passing one."""
    _, _, _, attrition = reference_build
    excluded = dict(zip(attrition.name, attrition.persons_excluded))
    silent = [name for name, n in excluded.items() if n == 0 and name not in ("Persons in the data", "Alive at diagnosis date")]
    assert not silent, f"rules that excluded nobody: {silent}"


def test_build_command_writes_tables_manifest_and_exports(demo_run, spark, tmp_path, capsys):
    import pyarrow.parquet as pq

    from cohortlake.cli import main
    from conftest import REPO

    lake, _ = demo_run
    out = tmp_path / "out"
    assert main(["build", str(REPO / "cohort_defs" / f"{REFERENCE}.yaml"), "--lake", str(lake), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "No other HCC-directed therapy in [-30, +60]" in err and "exported" in err

    manifest = json.loads((lake / "cohorts" / REFERENCE / "manifest.json").read_text())
    assert manifest["step"] == "build"
    assert set(manifest["tables_read"]) >= {"silver/tumor", "silver/diagnosis", "silver/enrollment"}
    # the cohort's tables, and the quality gate's results about them
    assert set(manifest["tables_written"]) == {f"cohorts/{REFERENCE}/cohort", f"cohorts/{REFERENCE}/attrition",
                                               "_quality/results"}
    assert manifest["extra"]["quality_gate"]["passed"] is True
    # 1,500 patients: 111,139 diagnosis rows, below the build's threshold of the size rule
    assert manifest["extra"]["code_generation"] == "interpreted"
    # the second build is a new version of each table, not a second copy of the rows
    assert manifest["tables_written"][f"cohorts/{REFERENCE}/cohort"] == 1

    table = pq.read_table(out / "cohort.parquet")
    assert str(table.schema.field("index_date").type) == "date32[day]"
    frame = table.to_pandas()
    assert frame.columns[:9].tolist() == ["person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
                                          "followup_start", "followup_end", "event", "time_days"]
    assert frame.person_id.is_unique and (frame.time_days >= 0).all() and set(frame.event) <= {0, 1}
    with open(out / "attrition.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(13))
    assert int(rows[-1]["persons_remaining"]) == len(frame) == manifest["row_counts"][f"cohorts/{REFERENCE}/cohort"]
    remaining = [int(r["persons_remaining"]) for r in rows]
    assert remaining == sorted(remaining, reverse=True)


def test_build_without_ingest_says_what_to_run(spark, tmp_path, capsys):
    from cohortlake.cli import main
    from conftest import REPO

    assert main(["build", str(REPO / "cohort_defs" / f"{REFERENCE}.yaml"), "--lake", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "no canonical tables" in err and "cohortlake ingest" in err


def test_plan_scans_each_claims_table_once(demo_run):
    """Claims are tagged in one scan per table and every rule reads the tagged rows."""
    lake, _ = demo_run
    manifest = json.loads((lake / "cohorts" / REFERENCE / "manifest.json").read_text())
    scans = manifest["extra"]["table_scans"]
    for table in ("diagnosis", "procedure", "dispensing", "enrollment", "death"):
        assert scans[f"silver/{table}"] == 1, scans
    assert set(scans) <= {f"silver/{t}" for t in ("person", "tumor", "diagnosis", "procedure", "dispensing",
                                                   "enrollment", "death")}, scans


def test_the_columns_a_plan_reads_are_what_a_bare_scan_must_read(spark, demo_run):
    """benchmarks/build_cohort.py measures its floor by scanning these columns: every scanned table, real columns."""
    from cohortlake.engine.cohort import build_cohort
    from cohortlake.engine.plan import columns_read, table_scans
    from cohortlake.engine.store import read_silver
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.sources.canonical import SCHEMAS
    from cohortlake.spec import load_definition
    from paths import REPO

    lake = Lakehouse(str(demo_run[0]), spark)
    result = build_cohort(load_definition(REPO / "cohort_defs" / f"{REFERENCE}.yaml"), read_silver(lake))
    try:
        read = columns_read(result.cohort, lake.root)
        assert set(read) == set(table_scans(result.cohort, lake.root)), read
        for table, names in read.items():
            assert names and names <= set(SCHEMAS[table.removeprefix("silver/")].fieldNames()), (table, names)
        assert {"person_id", "date", "code", "code_system"} <= read["silver/diagnosis"], read
    finally:
        result.release()


def test_a_compiled_build_aggregates_in_generated_code_and_the_next_reuses_its_classes(spark, demo_run):
    """Two compiled builds of the reference design in one session.

    A rule that only tells no event from some asks for a plain ``max``, not a set of
    values: one ``collect_set`` puts the whole aggregation of its source into Spark's
    object aggregation, which evaluates every aggregate's inputs row by row without
    generated code. The reference design's counts are all compared with 0 or 1 (rule 10
    ``at_most: 0``, the washout, the flags), so its plans, persisted ones included, hold
    none. The second build finds the classes Spark generated for the first in its cache
    (``spark.sql.codegen.cache.maxEntries``, lake/session.py); at Spark's default of 100
    it generated and compiled 129 of the first's 134 again.
    """
    from cohortlake.engine.cohort import build_cohort
    from cohortlake.engine.store import read_silver
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.spec import load_definition
    from paths import REPO

    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    lake = Lakehouse(str(demo_run[0]), spark)
    definition = load_definition(REPO / "cohort_defs" / f"{REFERENCE}.yaml")
    generated = []
    for _ in range(2):
        before = compilations.getCount()
        result = build_cohort(definition, read_silver(lake))
        try:
            result.flags.count()
            generated.append(compilations.getCount() - before)
            plan = result.flags._jdf.queryExecution().executedPlan().toString()
            assert "InMemoryRelation" in plan  # the persisted plans are part of the text
            assert "ObjectHashAggregate" not in plan and "collect_set" not in plan
        finally:
            result.release()
    assert generated[1] <= 20, generated


def test_the_session_jvm_caps_the_optimising_compiler_on_generated_code_only(spark):
    """The JVM of a local session runs with lake/session.py's JIT_OPTIONS: huge methods are
    compiled, and HotSpot holds the command that makes its optimising compiler give up early
    on the classes Spark generates (their methods keep first-tier code), not on Spark's own."""
    from cohortlake.lake.session import JIT_OPTIONS

    jvm = spark._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert all(option in arguments for option in JIT_OPTIONS.split()), arguments
    diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    assert diagnostics.getVMOption("DontCompileHugeMethods").getValue() == "false"
    commands = diagnostics.getVMOption("CompileCommand").getValue()
    limit = next(c for c in commands.split("\n") if c.startswith("MaxNodeLimit,"))
    pattern, nodes = limit.split(",")[1:]
    assert int(nodes) < int(diagnostics.getVMOption("MaxNodeLimit").getValue())  # below the JVM's own limit
    # The pattern names the classes this Spark generates (a projection compiled here), not its own.
    classes, methods = pattern.rsplit(".", 1)
    projection = jvm.org.apache.spark.sql.catalyst.expressions.UnsafeProjection.create(spark.range(1)._jdf.schema())
    generated = projection.getClass().getName()
    assert "GeneratedClass" in generated and fnmatch.fnmatchcase(generated.replace(".", "/"), classes), generated
    assert methods == "*"
    assert not fnmatch.fnmatchcase(jvm.java.lang.Class.forName(
        "org.apache.spark.sql.catalyst.expressions.UnsafeProjection").getName().replace(".", "/"), classes)


def test_pyspark_finds_the_classes_it_names_on_every_call_without_asking_the_jvm(spark, demo_run):
    """lake/session.py keeps the classes of JVM_NAMES on py4j's view of the JVM: a build
    (here the reference design's, planned and counted) looks none of them up again, each
    is the class PySpark would have been given, and each asks the JVM for a static method
    at most once (without that, `functions.col` alone is asked for at every `F.col`)."""
    import py4j.java_gateway

    from cohortlake.engine import build_cohort
    from cohortlake.engine.store import read_silver
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.lake.session import JVM_NAMES, resolve_jvm_names
    from cohortlake.spec import load_definition
    from paths import REPO

    jvm = spark.sparkContext._jvm
    kept = vars(jvm)
    assert set(JVM_NAMES) <= set(kept)
    assert kept["functions"]._fqn == kept["org.apache.spark.sql.functions"]._fqn == "org.apache.spark.sql.functions"
    assert kept["PythonUtils"]._fqn == "org.apache.spark.api.python.PythonUtils"
    assert kept["PythonSQLUtils"]._fqn == "org.apache.spark.sql.api.python.PythonSQLUtils"

    asked: list[str] = []
    members: list[tuple[str, str]] = []
    lookup, member = py4j.java_gateway.JVMView.__getattr__, py4j.java_gateway.JavaClass.__getattr__

    def counting(view, name):
        asked.append(name)
        return lookup(view, name)

    def counting_members(cls, name):
        members.append((cls._fqn, name))
        return member(cls, name)

    definition = load_definition(REPO / "cohort_defs" / f"{REFERENCE}.yaml")
    frames = read_silver(Lakehouse(str(demo_run[0]), spark))
    for name in JVM_NAMES:  # forget the methods earlier tests looked up
        del kept[name]
    resolve_jvm_names(jvm)
    assert kept["functions"] is kept["org.apache.spark.sql.functions"]
    py4j.java_gateway.JVMView.__getattr__ = counting
    py4j.java_gateway.JavaClass.__getattr__ = counting_members
    try:
        result = build_cohort(definition, frames)
        try:
            assert result.cohort.count() > 0
        finally:
            result.release()
    finally:
        py4j.java_gateway.JVMView.__getattr__ = lookup
        py4j.java_gateway.JavaClass.__getattr__ = member
    assert not set(asked) & set(JVM_NAMES), sorted(set(asked))
    kept_classes = {kept[name]._fqn for name in JVM_NAMES}
    of_kept = [item for item in members if item[0] in kept_classes]
    assert ("org.apache.spark.sql.functions", "col") in of_kept
    assert len(of_kept) == len(set(of_kept)), sorted(item for item in set(of_kept) if of_kept.count(item) > 1)


@pytest.mark.parametrize("bound, n, needs_values", [
    ("at_most", 0, False), ("exactly", 0, False), ("at_least", 1, False),
    ("at_least", 2, True), ("at_most", 1, True), ("exactly", 1, True),
])
def test_an_occurrence_count_keeps_its_values_only_when_it_tells_more_than_one_apart(spark, bound, n, needs_values):
    from cohortlake.engine.rules.base import Context, compile_rule
    from cohortlake.spec import load_definition
    from cohortlake.spec.model import Criterion
    from paths import REPO

    definition = load_definition(REPO / "cohort_defs" / f"{REFERENCE}.yaml")
    criterion = Criterion.model_validate({"name": "therapy", "occurrence": {
        "codesets": ["ablation"], "tables": ["procedure"], "window": {"from": -30, "to": 60}, bound: n}})
    compiled = compile_rule(Context(definition).at("c10"), criterion)
    (aggregate,) = compiled.needs.aggregates
    assert ("collect_set" in str(aggregate.expression)) is needs_values, aggregate


def test_a_tumor_index_comes_first_and_only_indexed_persons_claims_are_tagged(spark, demo_run):
    """The reference design's index is a tumor: the build makes it before tagging and keeps the
    tagged rows of persons with an index date only (rules read no others). On the demo lake's
    mixed file, claims of persons with another cancer are in its code sets and are left out."""
    from pyspark.sql import functions as F

    from cohortlake.engine.cohort import build_cohort
    from cohortlake.engine.codes import EVENT_COLUMNS
    from cohortlake.engine.events import Inputs, tagged_events
    from cohortlake.engine.rules import compile_rules
    from cohortlake.engine.store import read_silver
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.spec import load_definition
    from paths import REPO

    lake = Lakehouse(str(demo_run[0]), spark)
    shipped = {path.stem: load_definition(path) for path in sorted((REPO / "cohort_defs").glob("*.yaml"))}
    kinds = {name: (d.index.kind, compile_rules(d).index.tables_only) for name, d in shipped.items()}
    assert all(only == (kind == "tumor") for kind, only in kinds.values()), kinds
    assert kinds[REFERENCE] == ("tumor", True)

    definition = shipped[REFERENCE]
    result = build_cohort(definition, read_silver(lake))
    everyone = Inputs(read_silver(lake))
    try:
        kept = [frame for frame in result.inputs.persisted if tuple(frame.columns) == EVENT_COLUMNS]
        assert len(kept) == 1, [f.columns for f in result.inputs.persisted]
        tagged = {r.person_id for r in kept[0].select("person_id").distinct().collect()}
        indexed = {r.person_id for r in result.flags.where(F.col("index_date").isNotNull()).select("person_id").collect()}
        unfiltered = tagged_events(everyone, definition, compile_rules(definition).needs.reads)
        all_tagged = {r.person_id for r in unfiltered.select("person_id").distinct().collect()}
        assert tagged == all_tagged & indexed and tagged
        assert all_tagged - indexed, "no claims of unindexed persons in the code sets: the test would show nothing"
        assert kept[0].count() < unfiltered.count()
    finally:
        result.release()
        everyone.release()
