"""Fit one CLV model on extracted features: what `kokyaku analytics fit` prints."""

from typing import Any, Literal

from kokyaku.analytics.features import Features
from kokyaku.analytics.models import BGNBD, FitError, GammaGamma, ParetoNBD
from kokyaku.analytics.models.summary import Unit

ModelName = Literal["bgnbd", "paretonbd", "gammagamma"]
MODELS: dict[str, type[BGNBD] | type[ParetoNBD]] = {"bgnbd": BGNBD, "paretonbd": ParetoNBD}
LABELS = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD", "gammagamma": "Gamma-Gamma"}


def fit_report(features: Features, model: ModelName, unit: Unit = "week") -> dict[str, Any]:
    """Fit `model` on the features; returns parameters, log-likelihood and the number of customers used."""
    if features.customer_id.size == 0:
        raise FitError(model=LABELS[model], reason=f"there are no orders up to {features.until}")
    report: dict[str, Any] = {"model": model, "until": features.until.isoformat()}
    if model == "gammagamma":
        x, m = features.frequency, features.monetary_major()
        spend = GammaGamma.fit(x, m)
        report.update(
            currency=features.currency,
            customers=int((x > 0).sum()),
            params=spend.params,
            log_likelihood=spend.log_likelihood(x, m),
        )
        return report
    _fitted, repeat = fit_repeat_model(features, model, unit)
    report.update(repeat)
    return report


def fit_repeat_model(
    features: Features, model: ModelName, unit: Unit = "week"
) -> tuple[BGNBD | ParetoNBD, dict[str, Any]]:
    """Fit BG/NBD or Pareto/NBD; returns the model and its unit, customers, parameters and log-likelihood."""
    if features.customer_id.size == 0:
        raise FitError(model=LABELS[model], reason=f"there are no orders up to {features.until}")
    x, t_x, T = features.frequency, features.recency(unit), features.age(unit)
    fitted = MODELS[model].fit(x, t_x, T)
    return fitted, {
        "unit": unit,
        "customers": int(x.size),
        "params": fitted.params,
        "log_likelihood": float(fitted.log_likelihood(x, t_x, T)),
    }
