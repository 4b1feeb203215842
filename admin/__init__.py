"""The Flask-Admin panel over the peewee models."""
