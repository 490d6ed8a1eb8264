"""Trackers: announce codec, Announcer, HTTP client."""
