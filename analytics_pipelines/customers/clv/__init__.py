"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

References
----------
- P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284 (BG/NBD).
- P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer
  Base Analysis", Journal of Marketing Research 42(4), 415-430, and B. G. S. Hardie's note "The
  Gamma-Gamma Model of Monetary Value" (2013) (Gamma-Gamma).

Conventions (the same as the papers and the ``lifetimes`` package), one row per customer:

- ``frequency`` (x): number of *repeat* purchases, i.e. purchases after the customer's first one.
  A non-negative integer.
- ``recency`` (t_x): age of the customer at their last purchase, measured from their first purchase.
  0 for customers with frequency 0.
- ``T``: age of the customer at the end of the observation period, measured from their first purchase.
  ``0 <= recency <= T``.
- ``recency``, ``T`` and the horizon ``t`` of the predictions are in one and the same time unit (for
  example weeks); the fitted ``alpha`` is in that unit too.
- ``monetary_value``: average value of the customer's *repeat* purchases (the first purchase excluded),
  in any currency unit; the Gamma-Gamma parameter ``v`` and the predicted values are in that unit.

Inputs are array-likes (numpy arrays, lists, polars Series) or scalars; scalars are broadcast against
the 1-D inputs, which must all have the same length. Outputs are 1-D float64 numpy arrays. Invalid inputs
(NaN or infinite values, negative values, a non-integer frequency, recency > T, ...) raise ``ValueError``.

Fits maximise the likelihood over the log-parameters with L-BFGS-B and an analytic gradient, after
collapsing identical customer rows into one row with a count, so that a fit on millions of customers
costs little more than one on the distinct rows.

Modules: model (parameters, formulas, input checks), fitting (objectives and the optimiser), bgnbd and
gamma_gamma (the public fits and predictions, re-exported here).
"""

from analytics_pipelines.customers.clv.bgnbd import (
    bgnbd_log_likelihood,
    conditional_expected_purchases,
    expected_purchases_population,
    fit_bgnbd,
    probability_alive,
)
from analytics_pipelines.customers.clv.gamma_gamma import (
    conditional_expected_average_value,
    customer_lifetime_value,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from analytics_pipelines.customers.clv.model import DAYS_PER_MONTH, BGNBDParams, GammaGammaParams

__all__ = [
    "DAYS_PER_MONTH",
    "BGNBDParams",
    "GammaGammaParams",
    "bgnbd_log_likelihood",
    "conditional_expected_average_value",
    "conditional_expected_purchases",
    "customer_lifetime_value",
    "expected_purchases_population",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "probability_alive",
]
