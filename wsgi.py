"""WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py wsgi:app`."""

from comfysync import create_app
from comfysync.config import load_env_file

load_env_file()  # `.env` (or ENV_FILE) under the real environment, even without -c gunicorn.conf.py
app = create_app()
