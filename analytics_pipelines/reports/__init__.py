"""Reports: a small model (title, period, sections of typed tables with optional charts), writers for CSV,
XLSX, PDF and JSON, and builders that read the marts through a Warehouse."""

from analytics_pipelines.reports.model import FORMATS, ChartSpec, Report, Section
from analytics_pipelines.reports.writers import render

__all__ = ["FORMATS", "ChartSpec", "Report", "Section", "render"]
