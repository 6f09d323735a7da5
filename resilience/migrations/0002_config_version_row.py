from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("resilience", "ConfigVersion").objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("resilience", "0001_config_version")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
