"""Breakers get the source that runs them; window reports and transitions the source that reported them.

Window reports are replaced every few seconds by every running process, so the unattributed
ones are dropped rather than guessed at; transitions recorded before keep an empty source.
"""

import django.db.models.deletion
from django.db import migrations, models


def drop_unattributed_windows(apps, schema_editor):
    apps.get_model("resilience", "BreakerWindow").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_seed_catalog"),
        ("resilience", "0010_breaker_name_any_printable"),
    ]

    operations = [
        migrations.AddField(
            model_name="breaker",
            name="source",
            field=models.ForeignKey(
                blank=True,
                help_text="The source whose services run it: only its ingest keys may report the breaker's state, "
                "and only they get its config. Empty: the console's own (redis, notify:...), reported by console "
                "processes.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="breakers",
                to="incidents.source",
            ),
        ),
        migrations.AddField(
            model_name="breakertransition",
            name="source",
            field=models.ForeignKey(
                blank=True,
                help_text="Whose key reported it (the console's source for console processes); empty: recorded "
                "before reports were attributed.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="incidents.source",
            ),
        ),
        migrations.RemoveConstraint(model_name="breakertransition", name="transition_once"),
        migrations.AddConstraint(
            model_name="breakertransition",
            constraint=models.UniqueConstraint(
                fields=("source", "breaker_name", "process", "generation"), name="transition_once_per_source"
            ),
        ),
        migrations.RunPython(drop_unattributed_windows, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="breakerwindow", name="breaker_window_per_process"),
        migrations.AddField(
            model_name="breakerwindow",
            name="source",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="incidents.source", default=None
            ),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="breakerwindow",
            constraint=models.UniqueConstraint(
                fields=("source", "breaker_name", "process"), name="breaker_window_per_source_process"
            ),
        ),
    ]
