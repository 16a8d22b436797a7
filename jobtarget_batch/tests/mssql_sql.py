"""Print the SQL Server DDL of every migration of our apps, without a server (used by a test)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402

APPS = ("jobs", "processes")


def main() -> None:
    print(f"vendor={connection.vendor} options={connection.settings_dict['OPTIONS']}")
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for key in loader.graph.leaf_nodes():
        if key[0] not in APPS:
            continue
        for app, name in loader.graph.forwards_plan(key):
            if app not in APPS:
                continue
            migration = loader.get_migration(app, name)
            state = loader.project_state((app, name), at_end=False)
            with connection.schema_editor(collect_sql=True, atomic=False) as editor:
                migration.apply(state, editor, collect_sql=True)
            print(f"-- {app}.{name}")
            print("\n".join(editor.collected_sql))


if __name__ == "__main__":
    main()
