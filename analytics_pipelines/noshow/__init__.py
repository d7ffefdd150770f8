"""The no-show model (issue 16): per-ticket features (point in time), a calibrated classifier trained on
ended events and scored on upcoming ones, its out-of-time evaluation beside the old service's rule, and the
per-event forecast. docs/no-show.md describes the model, its features, its validation and its limits."""
