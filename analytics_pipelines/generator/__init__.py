"""Synthetic TicketToken platform data: clean frames (synth), bad-row injection (dirty), loading (run)."""

from analytics_pipelines.generator.synth import SCALES, Scale, generate_frames, generate_tables

__all__ = ["SCALES", "Scale", "generate_frames", "generate_tables"]
