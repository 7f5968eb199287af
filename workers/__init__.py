"""Celery worker package: ``celery -A workers worker -Q cpu,gpu``."""
from workers.celery import app

__all__ = ["app"]
