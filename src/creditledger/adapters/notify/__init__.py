"""Notices sent to teams: signed webhooks POSTed to the URL each team sets."""
