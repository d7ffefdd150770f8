"""Names and SQL text helpers shared by the embedded warehouse, its catalog builder and its readers."""

from __future__ import annotations

import os
import random
import time

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


#: how often link_current retries a name that a writer keeps replacing
LINK_ATTEMPTS = 50


def link_current(src: str | os.PathLike, dst: str | os.PathLike) -> bool:
    """Hard-link the file `src` names now to `dst`: False when `src` is gone (retention, compaction).

    link(2) resolves the name, then refuses with ENOENT an inode whose last name went meanwhile: a writer that
    renames a new version over `src` between the two makes a bare os.link fail although the name exists
    (a reader then silently lost that partition: CI, test_concurrent_writers_and_a_reader_never_fail). The
    name is looked up again until it links or is really gone. After a few quick retries it waits a random
    moment first (at most a few ms): a writer replacing the file in a tight loop (the test does) can otherwise
    stay in step with the retries on a loaded box (CI: 50 misses in a row, once)."""
    for attempt in range(LINK_ATTEMPTS):
        try:
            os.link(src, dst)
            return True
        except FileNotFoundError:
            if not os.path.lexists(src):
                return False
        if attempt >= 3:
            time.sleep(random.uniform(0, 0.0005 * min(attempt, 10)))
    raise OSError(f"{src} was replaced {LINK_ATTEMPTS} times while a reader linked it")
