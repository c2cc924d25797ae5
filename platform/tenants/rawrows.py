"""Model instances from hand-written SQL, for the few statements on the hot path.

Building a query through the ORM (filters, joins, select_related, compiling)
cost the annotator's submit more CPU than PostgreSQL spent running it. The
statements that run on every request are written once as SQL; these helpers
keep them tied to the models: the columns come from the model's fields, values
are converted as the ORM converts them (JSON text decoded, …) and inserts take
the values the ORM would have sent (defaults, auto_now_add, JSON adaptation).
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections


class RowLoader:
    """Selects a model's columns under a table alias and makes instances of them.

    With field names, only those are selected and the instance defers the
    rest (reading one later costs a query, as with QuerySet.only()).
    """

    def __init__(self, model, alias: str, fields: list[str] | None = None):
        opts = model._meta
        self.model = model
        self.fields = [opts.get_field(n) for n in fields] if fields else list(opts.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.columns = ", ".join(f'{alias}."{f.column}"' for f in self.fields)
        self._converters: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def _converters_for(self, using: str) -> list:
        if using not in self._converters:
            connection = connections[using]
            found = []
            for field in self.fields:
                col = field.get_col(self.model._meta.db_table)
                convert = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                found.append((col, convert))
            self._converters[using] = found
        return self._converters[using]

    def load(self, values, using: str = DEFAULT_DB_ALIAS):
        """An instance from this loader's columns, in order (a slice of a row)."""
        connection = connections[using]
        converted = []
        for value, (col, convert) in zip(values, self._converters_for(using), strict=True):
            for converter in convert:
                value = converter(value, col, connection)
            converted.append(value)
        return self.model.from_db(using, self.attnames, converted)


class RowInserter:
    """INSERT … RETURNING the primary key of one unsaved instance, as a CTE or a statement."""

    def __init__(self, model):
        opts = model._meta
        self.fields = [f for f in opts.concrete_fields if not f.primary_key]
        columns = ", ".join(f'"{f.column}"' for f in self.fields)
        values = ", ".join(["%s"] * len(self.fields))
        self.sql = (
            f"INSERT INTO {opts.db_table} ({columns}) "  # noqa: S608 (names only)
            f'VALUES ({values}) RETURNING "{opts.pk.column}"'
        )

    def params(self, instance, using: str = DEFAULT_DB_ALIAS) -> list:
        """The values the ORM's INSERT would send (pre_save fills auto_now_add)."""
        connection = connections[using]
        return [
            field.get_db_prep_save(field.pre_save(instance, True), connection=connection)
            for field in self.fields
        ]

    @staticmethod
    def saved(instance, pk, using: str = DEFAULT_DB_ALIAS):
        """Mark the instance as the ORM marks one it inserted."""
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = using
        return instance
