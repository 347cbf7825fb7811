"""What the CLI's parser is made of besides its commands: shared defaults, option types
(each turns a bad value into a usage error, exit 2), the psmatch defaults read from the
matching settings, and the example that ends every command's ``--help``."""

from __future__ import annotations

import argparse

DEFAULT_LAKE = "./lakehouse"
FORMATS = ("text", "json", "github")
CODESETS_ENV_NAME = "COHORTLAKE_CODESETS"
TIME_UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12, "years": 365.25}
DEFAULT_STUDY_OUT = "./study"
DEMO_PATIENTS = 10000
LAYOUTS = ("seer-medicare", "desynpuf")
# The synthetic SEER-Medicare files by cancer site (synth.model.CANCER_SITE_FILES, whose
# keys these are, the generator's default first: a unit test holds them equal without
# the CLI importing Spark).
CANCER_SITES = ("all", "liver")
DEMO_CANCER_SITE = "liver"


def out_folder(value: str) -> str:
    """--out: a local folder or a ``file://`` URI; the driver writes these files itself."""
    from urllib.parse import unquote, urlparse

    if value.startswith("file:"):
        return unquote(urlparse(value).path) or "/"
    if "://" in value:
        raise argparse.ArgumentTypeError(
            f"{value!r}: --out is a folder the driver writes (a local path or file:// URI); the lake "
            "(--lake) may be an object store, the hand-off files are copied from OUT after the run")
    return value


def column_list(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def caliper(text: str):
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number or 'none'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text}); write 'none' for no caliper")
    return value


def ratio(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100 (got {value})")
    return value


def matching_default(name: str):
    """psmatch's defaults are the matching settings' own (OHDSI CohortMethod's), as plain values."""
    from cohortlake.spec.matching import MatchingSettings

    default = MatchingSettings.model_fields[name].default
    return getattr(default, "value", default)


def values(enum) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


EXAMPLES = {
    "synth": "cohortlake synth --layout seer-medicare --patients 1000 --out ./raw",
    "ingest": "cohortlake ingest --layout seer-medicare --raw ./raw --lake ./lakehouse",
    "tables": "cohortlake tables --lake ./lakehouse",
    "history": "cohortlake history silver/diagnosis --lake ./lakehouse",
    "build": "cohortlake build cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "match": "cohortlake match cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "analyze": "cohortlake analyze cohort_defs/hcc_sorafenib_landmark.yaml --out ./study",
    "disclosure-check": "cohortlake disclosure-check ./study",
    "run": "cohortlake run cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "validate": "cohortlake validate --lake ./lakehouse --suite silver.enrollment",
    "bundle": "cohortlake bundle --out dist/cohortlake.zip",
    "check": "cohortlake check cohort_defs/                  # every definition, code-set and test file\n"
             "  cohortlake check my_cohort.yaml --format github --codesets ~/shared/codesets",
    "explain": "cohortlake explain cohort_defs/hcc_sorafenib_landmark.yaml > hcc.md",
    "schema": "cohortlake schema > cohortlake.schema.json\n"
              "  cohortlake schema --kind codesets > cohortlake-codesets.schema.json",
    "init": "cohortlake init liver_first && cohortlake check liver_first.yaml",
    "assure": "cohortlake assure cohort_defs/hcc_sorafenib_landmark.yaml",
    "demo": "cohortlake demo --patients 20000 --cancer-site liver   # twice the default",
    "survival": "cohortlake psmatch --data persons.csv --treatment treated --covariates age,sex --out ./ps\n"
                "  cohortlake survival --data ./ps/matched.csv --time time --event event --group treated "
                "--cluster match_id --weights weight --out ./km",
    "psmatch": "cohortlake psmatch --data persons.csv --treatment treated --covariates age,sex --out ./ps\n"
               "  cohortlake survival --data ./ps/matched.csv --time time --event event --group treated "
               "--cluster match_id --weights weight --out ./km   # the unmatched rows are left out",
}


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with an example."""
    for action in parser._subparsers._group_actions:
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if not sub.description and helps.get(name):
                sub.description = helps[name][0].upper() + helps[name][1:] + "."
            if name in EXAMPLES:
                sub.formatter_class = argparse.RawDescriptionHelpFormatter
                sub.epilog = "example:\n  " + EXAMPLES[name]
                if sub.description:
                    import textwrap

                    sub.description = textwrap.fill(sub.description, 88)
