"""Exercises: rehearse the hotline on a compressed clock and report what happened."""
