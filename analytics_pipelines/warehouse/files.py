"""Names and SQL text helpers shared by the embedded warehouse, its catalog builder and its readers."""

from __future__ import annotations

DATA_FILE = "data.parquet"
#: replaced (new inode) after every write of a table, once its files are in place: a reader polling for
#: changes stats this one file instead of every partition file (warehouse/reader_snapshot.py)
VERSION_FILE = ".tt_version"
#: the column of the catalog's views that holds the file name (filtered on, never shown)
FILE_COLUMN = "__tt_file"


def sql_strings(values) -> str:
    """String literals, comma separated."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def sql_list(values) -> str:
    """A SQL list of string literals."""
    return f"[{sql_strings(values)}]"
