"""Scheduled jobs (APScheduler) and their runner."""
