"""Predictions (issue 16): the demand forecast, its backtest and the what-if scenarios (docs/predictions.md)."""
