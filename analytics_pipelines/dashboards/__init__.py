"""Dashboards and widgets over the semantic query layer (issue 21; docs/dashboards.md): request bodies and
their validation (model), who may do what (access), the default dashboard every venue gets (template) and a
widget's answer as a report for the CSV/XLSX writers (export). Pure: no FastAPI, no database."""
