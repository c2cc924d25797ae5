"""The ledger's monthly partitions on PostgreSQL (SQLite keeps one plain table).

A partition holds one month of occurred_at in the project's time zone, the
months reports and statements ask for, so a month's report or statement reads
one partition. A DEFAULT partition takes any entry outside the months created
(a back-dated import, a test's year 2000): posting never fails for want of a
partition, and such rows are still counted, only not pruned.

The append-only trigger is declared on the partitioned table; PostgreSQL
clones it onto every partition, present and future. A detached partition
loses the clone, so detaching puts the trigger back on the table it leaves.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

LEDGER = "valuechain_ledgerentry"
SEQUENCE = "valuechain_ledgerentry_id_seq"
DEFAULT_PARTITION = f"{LEDGER}_default"
TRIGGER = "valuechain_ledger_append_only"


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{LEDGER}_y{month:%Y}m{month:%m}"


def month_start_at(month: date, time_zone: str) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=ZoneInfo(time_zone))


def partition_create_sql(month: date, time_zone: str) -> str:
    start = month_start_at(month, time_zone).isoformat()
    end = month_start_at(month_add(month, 1), time_zone).isoformat()
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF {LEDGER} "
        f"FOR VALUES FROM ('{start}') TO ('{end}')"
    )


def append_only_trigger_sql(table: str) -> str:
    return (
        f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION valuechain_ledger_append_only()"
    )


def partitions(cursor) -> list[str]:
    """The ledger's attached partitions, by name."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        [LEDGER],
    )
    return [row[0] for row in cursor.fetchall()]


def is_partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [LEDGER])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def default_holds(cursor, month: date, time_zone: str) -> bool:
    """Whether the DEFAULT partition has rows of this month (then the month's
    partition cannot be created until they are moved)."""
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} "  # noqa: S608 (names only)
        "WHERE occurred_at >= %s AND occurred_at < %s)",
        [month_start_at(month, time_zone), month_start_at(month_add(month, 1), time_zone)],
    )
    return cursor.fetchone()[0]
