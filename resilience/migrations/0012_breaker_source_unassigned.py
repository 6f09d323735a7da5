"""A breaker without a source is unassigned (the first source to report it takes it), no longer the console's own."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("resilience", "0011_reports_per_source")]

    operations = [
        migrations.AlterField(
            model_name="breaker",
            name="source",
            field=models.ForeignKey(
                blank=True,
                help_text="The service (source) that runs this breaker. Empty: the first source to report it takes "
                "it; the console's own breakers (redis, notify:*) have none.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="breakers",
                to="incidents.source",
            ),
        ),
    ]
