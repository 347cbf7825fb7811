"""The propensity model fitted with Spark ML on a Spark frame agrees with statsmodels."""

from __future__ import annotations

import numpy as np
import pytest

from cohortlake.errors import UserError
from cohortlake.matching import fit_ps
from ps_data import simulated


@pytest.mark.spark
def test_spark_ml_fit_agrees_with_statsmodels(spark):
    from cohortlake.matching import estimate_ps, fit_ps_spark

    frame = simulated(2000, seed=9)[["age", "sex", "race", "cirrhosis", "arm"]]
    frame["treated"] = (frame["arm"] == "sorafenib").astype(int)
    frame["cirrhosis"] = frame["cirrhosis"].astype(int)
    data = spark.createDataFrame(frame.drop(columns="arm"))
    covariates = ["age", "sex", "race", "cirrhosis"]
    # the same L2 penalty on both sides (Spark's regParam, statsmodels' alpha; intercept free)
    local = fit_ps(frame, frame["treated"] == 1, covariates, l2=0.01).coefficients.set_index("term")
    remote = estimate_ps(data, "treated", covariates, l2=0.01, spark_threshold=100)  # 2000 rows > 100: Spark ML
    assert "Spark ML" in remote.method and "L2 penalty 0.01" in remote.method
    coefficients = remote.coefficients.set_index("term")["coefficient"]
    assert list(coefficients.index) == list(local.index)
    assert coefficients.to_numpy() == pytest.approx(local["coefficient"].to_numpy(), abs=2e-3)
    scored = remote.frame.limit(5).toPandas()
    assert list(scored.columns) == list(data.columns) + ["ps", "ps_logit"]
    assert scored["ps"].to_numpy() == pytest.approx(1 / (1 + np.exp(-scored["ps_logit"].to_numpy())))
    with pytest.raises(UserError, match="constant covariate"):
        fit_ps_spark(data.withColumn("one", data["age"] * 0), "treated", ["age", "one"])
