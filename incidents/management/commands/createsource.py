"""Create a source and print its ingest key and Sentry DSN."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from incidents import services


class Command(BaseCommand):
    help = "Create a source and print its ingest key and Sentry DSN."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument("--environment", action="append", default=[], help="May be given several times.")
        parser.add_argument("--rate-limit", type=int, default=None, help="Events per minute; 0 means unlimited.")

    def handle(self, *args, name, slug, environment, rate_limit, **options):
        try:
            source, key = services.source_create(
                name=name, slug=slug, environments=environment, rate_limit_per_minute=rate_limit
            )
        except ValidationError as error:
            raise CommandError("; ".join(f"{f}: {' '.join(m)}" for f, m in error.message_dict.items())) from error
        self.stdout.write(f"source:     {source.name} (id {source.pk})")
        self.stdout.write(f"ingest key: {key.public_key}")
        self.stdout.write(f"dsn:        {key.dsn}")
