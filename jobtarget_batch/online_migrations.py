"""Migration operations that change indexes of big tables without locking them on PostgreSQL.

`CREATE INDEX` and `DROP INDEX` hold a lock that blocks every write to the table while they run:
on a history of millions of runs that stops the runners' status writes for minutes. On PostgreSQL
these operations use `CONCURRENTLY` (the migration must say `atomic = False`: PostgreSQL refuses
it inside a transaction); on SQLite and SQL Server they are the plain operations.

- `AddIndexOnline` / `RemoveIndexOnline`: `AddIndex` / `RemoveIndex`.
- `DropForeignKeyIndexOnline`: turns `db_index` off on a foreign key whose column already leads
  another index (the automatic one-column index is then only a cost) and drops that index.
"""

from __future__ import annotations

from django.db import NotSupportedError
from django.db.migrations.operations import AddIndex, AlterField, RemoveIndex


def _online(schema_editor) -> bool:
    """True on PostgreSQL, after making sure no transaction would make CONCURRENTLY fail midway."""
    if schema_editor.connection.vendor != "postgresql":
        return False
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            "Index changes run CONCURRENTLY on PostgreSQL and cannot run in a transaction: "
            "set `atomic = False` on the migration."
        )
    return True


class AddIndexOnline(AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _online(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _online(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)

    def describe(self):
        return super().describe() + " (concurrently on PostgreSQL)"


class RemoveIndexOnline(RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _online(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.remove_index(model, index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _online(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.add_index(model, index, concurrently=True)

    def describe(self):
        return super().describe() + " (concurrently on PostgreSQL)"


class DropForeignKeyIndexOnline(AlterField):
    """`AlterField` to `db_index=False` on a foreign key, dropping its automatic index by name.

    The name is the one Django gave the index when it created it (`_create_index_name`, the same
    on every backend), so no database introspection is needed: the SQL can be rendered for a
    server that is not there (the SQL Server DDL test). The constraint itself stays.
    """

    def __init__(self, model_name: str, name: str, field, preserve_default: bool = True):
        if field.db_index:
            raise ValueError(f"DropForeignKeyIndexOnline({model_name}.{name}) needs a field with db_index=False")
        super().__init__(model_name, name, field, preserve_default)

    def _index_name(self, schema_editor, model, field) -> str:
        return schema_editor._create_index_name(model._meta.db_table, [field.column], suffix="")

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        old_field = model._meta.get_field(self.name)
        name = self._index_name(schema_editor, model, old_field)
        if _online(schema_editor):
            schema_editor.execute(schema_editor._delete_index_sql(model, name, concurrently=True))
        else:
            schema_editor.execute(schema_editor._delete_index_sql(model, name))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        field = model._meta.get_field(self.name)
        if _online(schema_editor):
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field], concurrently=True))
        else:
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))

    def describe(self):
        return f"Drop the single-column index of {self.model_name}.{self.name} (concurrently on PostgreSQL)"
