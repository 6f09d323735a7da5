"""Create the admin user on first run and print how to log in."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an admin user with a generated password (once) and print the admin URL and login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        login_file = settings.VAR_DIR / "admin-login.txt"
        users = get_user_model().objects
        if not users.filter(username=username).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser(username=username, email="", password=password)
            login_file.write_text(f"{username} {password}\n")
            login_file.chmod(0o600)
        self.stdout.write(f"Admin:    {settings.CONSOLE_URL}/admin/")
        if login_file.exists():
            saved_user, saved_password = login_file.read_text().split()
            self.stdout.write(f"Login:    {saved_user} / {saved_password}   (kept in {login_file})")
        else:
            self.stdout.write(f"Login:    {username} (password set earlier; change it with manage.py changepassword)")
