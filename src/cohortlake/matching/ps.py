"""Propensity scores: a logistic regression of the treated arm on baseline covariates.

In memory with statsmodels (maximum likelihood, or an L2 penalty), or with Spark ML for
cohorts above ``SPARK_THRESHOLD`` persons; ``estimate_ps`` chooses by row count.

Covariates: numeric and boolean columns enter as they are; text and categorical
columns become one indicator per level. The model drops the first level (sorted, or
the category order of a pandas Categorical) as reference; balance tables keep every
level, named ``race=black``. Problems a user can cause — a missing value, a constant
covariate, a covariate that separates the arms, collinear covariates — raise one
UserError naming the covariate(s).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cohortlake.errors import UserError

SPARK_THRESHOLD = 1_000_000
"""Above this many persons the propensity model is fitted with Spark ML."""

# |linear predictor| above this means a fitted probability within ~1e-13 of 0 or 1:
# in practice only reached when covariates (jointly) separate the arms.
EXTREME_LOGIT = 30.0


@dataclass(frozen=True)
class Design:
    """The covariates as numbers: the model's columns and the balance table's columns."""

    model: pd.DataFrame
    """float columns for the model, reference levels dropped, no intercept."""
    balance: pd.DataFrame
    """float columns for balance, every level of a categorical covariate kept."""
    columns_of: dict[str, list[str]]
    """covariate → its balance columns (one, or one per level)."""
    reference: dict[str, str] = field(default_factory=dict)
    """categorical covariate → the level the model leaves out."""

    def covariate_of(self, column: str) -> str:
        for covariate, columns in self.columns_of.items():
            if column in columns:
                return covariate
        raise KeyError(column)


@dataclass(frozen=True)
class PsFit:
    """A fitted propensity model and each person's score, in the input's row order."""

    ps: np.ndarray
    logit: np.ndarray
    """The linear predictor, logit(ps) without rounding at 0 or 1."""
    coefficients: pd.DataFrame
    """term, coefficient, std_error, z, p_value, odds_ratio (NaN where not estimated)."""
    method: str
    """Which estimator produced the scores (statsmodels or Spark ML, penalty)."""
    design: Design | None = None


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(series) \
            or pd.api.types.is_string_dtype(series):
        return "categorical"
    return "unsupported"


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [level for level in series.cat.categories if level in present]
    return sorted(series.dropna().astype(str).unique())


def design_matrix(frame: pd.DataFrame, covariates) -> Design:
    """Check the covariates of ``frame`` and turn them into numeric model and balance columns."""
    covariates = list(covariates)
    if not covariates:
        raise UserError("no propensity-score covariates given")
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        raise UserError(f"covariate column(s) not in the data: {', '.join(missing)} "
                        f"(columns: {', '.join(map(str, frame.columns))})")
    duplicated = sorted({c for c in covariates if covariates.count(c) > 1})
    if duplicated:
        raise UserError(f"covariate(s) listed twice: {', '.join(duplicated)}")
    nulls = {c: int(frame[c].isna().sum()) for c in covariates}
    nulls = {c: k for c, k in nulls.items() if k}
    if nulls:
        listing = ", ".join(f"'{c}' ({k:,} of {len(frame):,} rows)" for c, k in nulls.items())
        raise UserError(f"missing values in covariate(s) {listing}: impute them or drop those persons first")
    model, balance, columns_of, reference = {}, {}, {}, {}
    for name in covariates:
        series = frame[name]
        kind = _kind(series)
        if kind == "unsupported":
            raise UserError(f"covariate '{name}' has type {series.dtype}; use numbers, true/false or text")
        if kind == "categorical":
            text = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype(str)
            levels = _levels(text)
            if len(levels) < 2:
                raise UserError(f"covariate '{name}' is constant (every person has '{levels[0]}' if any); "
                                "leave it out of the model")
            columns = []
            for level in levels:
                column = f"{name}={level}"
                values = (text == level).to_numpy(dtype=float)
                balance[column] = values
                columns.append(column)
                if level != levels[0]:
                    model[column] = values
            columns_of[name] = columns
            reference[name] = str(levels[0])
        else:
            values = series.to_numpy(dtype=float)
            if len(values) and np.all(values == values[0]):
                raise UserError(f"covariate '{name}' is constant (every person has {series.iloc[0]}); "
                                "leave it out of the model")
            if not np.all(np.isfinite(values)):
                raise UserError(f"covariate '{name}' has infinite values")
            model[name] = values
            balance[name] = values
            columns_of[name] = [name]
    index = frame.index
    return Design(model=pd.DataFrame(model, index=index), balance=pd.DataFrame(balance, index=index),
                  columns_of=columns_of, reference=reference)


def separating_covariates(design: Design, treated: np.ndarray) -> list[str]:
    """Covariates that alone separate the arms, each with why (empty: none found).

    A level (or value of a 0/1 covariate) present in only one arm gives quasi-complete
    separation; so does a numeric covariate whose range in one arm ends where the other
    arm's begins. Separation by a combination of covariates is caught after the fit.
    """
    treated = np.asarray(treated, dtype=bool)
    found = []
    for covariate, columns in design.columns_of.items():
        values = design.balance[columns[0]].to_numpy()
        categorical = len(columns) > 1 or covariate in design.reference
        binary = categorical or np.isin(values, (0.0, 1.0)).all()
        if binary:
            if categorical:
                cells = [(c.split("=", 1)[1], design.balance[c].to_numpy() == 1) for c in columns]
            else:
                cells = [("1", values == 1), ("0", values == 0)]
            for level, present in cells:
                n_treated = int((present & treated).sum())
                n_control = int((present & ~treated).sum())
                if n_treated == 0 or n_control == 0:
                    arm = "treated" if n_control == 0 else "control"
                    found.append(f"{covariate}={level} ({max(n_treated, n_control):,} persons, all {arm})")
        else:
            t_values, c_values = values[treated], values[~treated]
            if len(t_values) and len(c_values):
                if t_values.max() <= c_values.min() or c_values.max() <= t_values.min():
                    found.append(f"{covariate} (treated range [{t_values.min():g}, {t_values.max():g}], "
                                 f"control range [{c_values.min():g}, {c_values.max():g}] do not overlap)")
    return found


def _collinear(x: np.ndarray, names: list[str]) -> list[str]:
    """Model columns that are linear combinations of the intercept and earlier columns."""
    gram = x.T @ x
    scale = np.sqrt(np.diag(gram))
    scale[scale == 0] = 1.0
    gram = gram / np.outer(scale, scale)
    dependent, kept = [], [0]
    for j in range(1, x.shape[1]):
        trial = kept + [j]
        sub = gram[np.ix_(trial, trial)]
        if np.linalg.eigvalsh(sub)[0] < 1e-10:
            dependent.append(names[j])
        else:
            kept.append(j)
    return dependent


def _check_treated(treated, n: int) -> np.ndarray:
    treated = np.asarray(treated)
    if treated.shape != (n,):
        raise ValueError("treated and data differ in length")
    treated = treated.astype(bool)
    if treated.all() or not treated.any():
        raise UserError(f"every person is in one arm ({int(treated.sum()):,} treated of {n:,}); "
                        "a propensity score needs both arms")
    return treated


def fit_ps(frame: pd.DataFrame, treated, covariates, l2: float = 0.0) -> PsFit:
    """Fit a logistic propensity model with statsmodels; ``treated`` is a boolean array or a column name."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning, HessianInversionWarning, PerfectSeparationError, PerfectSeparationWarning,
    )

    if isinstance(treated, str):
        treated = frame[treated].to_numpy()
    treated = _check_treated(treated, len(frame))
    design = design_matrix(frame, covariates)
    # An L2 penalty keeps coefficients finite under separation (a remedy users may choose);
    # without one, separation is an error before statsmodels wanders towards infinity.
    separating = separating_covariates(design, treated) if l2 == 0 else []
    if separating:
        raise UserError("the propensity model cannot be fitted: perfect or quasi-complete separation by "
                        + "; ".join(separating) + " — drop or regroup these covariates, restrict the cohort, "
                        "or use an L2 penalty")
    names = ["intercept"] + list(design.model.columns)
    x = np.column_stack([np.ones(len(frame)), design.model.to_numpy(dtype=float)])
    collinear = _collinear(x, names)
    if collinear:
        covs = sorted({design.covariate_of(c) for c in collinear})
        raise UserError(f"collinear covariates: {', '.join(collinear)} is a linear combination of the others "
                        f"(covariate(s) {', '.join(covs)}); drop one")
    y = treated.astype(float)
    with warnings.catch_warnings(), np.errstate(over="ignore"):
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", HessianInversionWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            if l2 > 0:
                alpha = np.full(x.shape[1], float(l2))
                alpha[0] = 0.0  # the intercept is not penalised (as Spark ML)
                result = sm.GLM(y, x, family=sm.families.Binomial()).fit_regularized(
                    method="elastic_net", alpha=alpha, L1_wt=0.0)
                params = np.asarray(result.params)
                converged = True
                std_error = np.full(len(params), np.nan)
                method = f"statsmodels GLM binomial, L2 penalty {l2:g} (ridge)"
            else:
                result = sm.Logit(y, x).fit(method="newton", maxiter=100, disp=0)
                params = np.asarray(result.params)
                converged = bool(result.mle_retvals.get("converged", True))
                with np.errstate(invalid="ignore", divide="ignore"):
                    std_error = np.asarray(result.bse)
                method = "statsmodels Logit (maximum likelihood, Newton)"
        except (PerfectSeparationWarning, PerfectSeparationError):
            raise UserError(_joint_separation(names, None, design)) from None
        except np.linalg.LinAlgError as error:
            raise UserError(f"the propensity model cannot be fitted ({error}); covariates may be collinear "
                            "or separate the arms") from None
    linear = x @ params
    if l2 == 0 and (not converged or np.abs(linear).max() > EXTREME_LOGIT):
        raise UserError(_joint_separation(names, params, design))
    ps = 1.0 / (1.0 + np.exp(-linear))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = params / std_error
    from scipy.stats import norm

    coefficients = pd.DataFrame({
        "term": names, "coefficient": params, "std_error": std_error, "z": z,
        "p_value": 2 * norm.sf(np.abs(z)), "odds_ratio": np.exp(params),
    })
    return PsFit(ps=ps, logit=linear, coefficients=coefficients, method=method, design=design)


def _joint_separation(names, params, design: Design) -> str:
    message = ("the propensity model cannot be fitted: the covariates jointly separate the arms "
               "(some persons get a probability of exactly 0 or 1)")
    if params is not None:
        biggest = np.argsort(-np.abs(params[1:]))[:3] + 1
        terms = ", ".join(f"{names[i]} ({params[i]:+.1f})" for i in biggest)
        message += f"; largest coefficients: {terms}"
    return message + " — drop or regroup covariates, or restrict the cohort"


# -- Spark ML, for cohorts above SPARK_THRESHOLD persons ------------------------------------

@dataclass(frozen=True)
class SparkPsFit:
    """A propensity model fitted by Spark ML; ``frame`` is the input plus ``ps`` and ``ps_logit``."""

    frame: object
    coefficients: pd.DataFrame
    method: str


def fit_ps_spark(data, treatment: str, covariates, l2: float = 0.0) -> SparkPsFit:
    """Fit the propensity model with pyspark.ml LogisticRegression, without collecting rows.

    Same covariate rules as ``fit_ps`` (levels as indicators, first level the reference,
    the same checks); ``l2`` is Spark's ``regParam`` with ``elasticNetParam=0`` and no
    standardisation, the same penalty as ``fit_ps(l2=…)``. No standard errors.
    """
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    covariates = list(covariates)
    fields = {f.name: f.dataType for f in data.schema.fields}
    absent = [c for c in [treatment] + covariates if c not in fields]
    if absent:
        raise UserError(f"column(s) not in the data: {', '.join(absent)}")
    numeric = (T.NumericType, T.BooleanType)
    text = [c for c in covariates if isinstance(fields[c], T.StringType)]
    other = [c for c in covariates if not isinstance(fields[c], numeric + (T.StringType,))]
    if other:
        raise UserError(f"covariate(s) {', '.join(other)} are neither numbers, true/false nor text")
    # One pass for missing values, ranges, text levels and the arms.
    aggregates = [F.count(F.lit(1)).alias("_n"), F.sum(F.col(treatment).cast("double")).alias("_treated")]
    for c in covariates:
        aggregates.append(F.sum(F.col(c).isNull().cast("long")).alias(f"null:{c}"))
        if c in text:  # levels are few: gather them in the same pass
            aggregates.append(F.collect_set(F.col(c)).alias(f"levels:{c}"))
        else:
            aggregates += [F.min(F.col(c).cast("double")).alias(f"min:{c}"), F.max(F.col(c).cast("double")).alias(f"max:{c}")]
    stats = data.agg(*aggregates).first().asDict()
    nulls = {c: stats[f"null:{c}"] for c in covariates if stats[f"null:{c}"]}
    if nulls:
        raise UserError("missing values in covariate(s) " + ", ".join(f"'{c}' ({k:,} rows)" for c, k in nulls.items()))
    constant = [c for c in covariates if c not in text and stats[f"min:{c}"] == stats[f"max:{c}"]]
    levels = {c: sorted(stats[f"levels:{c}"]) for c in text}
    constant += [c for c in text if len(levels[c]) < 2]
    if constant:
        raise UserError(f"constant covariate(s): {', '.join(constant)}; leave them out of the model")
    if not stats["_treated"] or stats["_treated"] == stats["_n"]:
        raise UserError("every person is in one arm; a propensity score needs both arms")
    names, columns = [], []
    for c in covariates:
        if c in text:
            for level in levels[c][1:]:
                names.append(f"{c}={level}")
                columns.append(F.when(F.col(c) == level, 1.0).otherwise(0.0))
        else:
            names.append(c)
            columns.append(F.col(c).cast("double"))
    # Univariate separation, in one more pass: per indicator, treated and control counts.
    checks = []
    label = F.col(treatment).cast("double")
    for name, column in zip(names, columns):
        checks += [F.sum(column * label).alias(f"t:{name}"), F.sum(column * (1 - label)).alias(f"c:{name}")]
    counts = data.agg(*checks).first().asDict()
    separating = []
    for name in names:
        if "=" in name or (stats.get(f"min:{name}"), stats.get(f"max:{name}")) == (0.0, 1.0):
            if counts[f"t:{name}"] == 0 or counts[f"c:{name}"] == 0:
                separating.append(name)
    if separating:
        raise UserError("the propensity model cannot be fitted: perfect or quasi-complete separation by "
                        + ", ".join(separating))
    features = "_ps_features"
    prepared = data.select("*", *[col.alias(f"_ps_x{i}") for i, col in enumerate(columns)],
                           label.alias("_ps_label"))
    assembled = VectorAssembler(inputCols=[f"_ps_x{i}" for i in range(len(columns))],
                                outputCol=features).transform(prepared)
    model = LogisticRegression(featuresCol=features, labelCol="_ps_label", regParam=float(l2), elasticNetParam=0.0,
                               standardization=False, fitIntercept=True, maxIter=100, tol=1e-8,
                               family="binomial").fit(assembled)
    scored = model.transform(assembled)
    scored = scored.select(
        *data.columns,
        vector_to_array(F.col("probability"))[1].alias("ps"),
        vector_to_array(F.col("rawPrediction"))[1].alias("ps_logit"),
    )
    params = np.concatenate([[model.intercept], np.asarray(model.coefficients.toArray())])
    coefficients = pd.DataFrame({
        "term": ["intercept"] + names, "coefficient": params, "std_error": np.nan, "z": np.nan,
        "p_value": np.nan, "odds_ratio": np.exp(params),
    })
    penalty = f", L2 penalty {l2:g}" if l2 > 0 else ""
    return SparkPsFit(frame=scored, coefficients=coefficients,
                      method=f"Spark ML LogisticRegression (L-BFGS{penalty})")


def estimate_ps(data, treatment: str, covariates, *, l2: float = 0.0, spark_threshold: int = SPARK_THRESHOLD):
    """Fit the propensity model where the data are: statsmodels up to ``spark_threshold`` persons, Spark ML above.

    A pandas DataFrame is fitted in memory (it is there already); a Spark DataFrame with
    at most ``spark_threshold`` rows is collected (persons × covariates, small) and fitted
    with statsmodels, a larger one stays in Spark.
    """
    if isinstance(data, pd.DataFrame):
        return fit_ps(data, data[treatment].to_numpy(), covariates, l2=l2)
    if data.count() > spark_threshold:
        return fit_ps_spark(data, treatment, covariates, l2=l2)
    local = data.select(treatment, *covariates).toPandas()
    return fit_ps(local, local[treatment].to_numpy(), covariates, l2=l2)
